//! The languages of `multi_code_executor` (reference §3.6): the file the code goes in and the
//! commands that build and run it, in the work directory, through `sh -c`.
//!
//! Commands are fixed strings; nothing the caller sends is spliced into them (the one value
//! taken from the code, scala's object name, arrives as `$1`).

/// One language.
#[derive(Debug)]
pub(super) struct Language {
    pub keys: &'static [&'static str],
    pub main_file: &'static str,
    /// Runs before the main file is written (csharp's project scaffold).
    pub prepare: Option<&'static str>,
    pub build: Option<&'static str>,
    pub run: &'static str,
}

/// Sourced before every command: the profile's PATH additions (ms-enclave runs `sh -lc`),
/// without letting it drop what the image's own PATH holds.
pub(super) const PROFILE: &str = r#"_p=$PATH; [ -r /etc/profile ] && . /etc/profile >/dev/null 2>&1; PATH="$_p:$PATH"; export PATH"#;

/// For python and pytest: sandbox-fusion's conda env when the image has it, and an interpreter
/// that exists (python3, else python).
const PYTHON_ENV: &str = r#"if [ -x /root/miniconda3/bin/conda ]; then . /root/miniconda3/bin/activate sandbox-runtime >/dev/null 2>&1 || true; fi
PY=$(command -v python3 || command -v python || echo python)
"#;

/// Link flags that work in this image, probed once per sandbox and kept in a file there
/// (ms-enclave probed once per process, whatever the image).
const CPP_BUILD: &str = r#"f=/tmp/.enclave_cpp_ldflags
if [ ! -f "$f" ]; then
  l=
  printf 'int main(){return 0;}\n' > mce_rt_probe.cpp
  for x in -lcrypto -lssl -lpthread; do
    g++ mce_rt_probe.cpp -o mce_rt_probe "$x" >/dev/null 2>&1 && l="$l $x"
  done
  rm -f mce_rt_probe.cpp mce_rt_probe
  printf '%s\n' "$l" > "$f.$$" && mv -f "$f.$$" "$f"
fi
g++ -std=c++17 main.cpp -o app $(cat "$f")"#;

pub(super) const LANGUAGES: &[Language] = &[
    Language {
        keys: &["python"],
        main_file: "main.py",
        prepare: None,
        build: None,
        run: r#""$PY" main.py"#,
    },
    Language {
        keys: &["pytest"],
        main_file: "test_main.py",
        prepare: None,
        build: None,
        run: r#""$PY" -m pytest test_main.py"#,
    },
    Language {
        keys: &["cpp"],
        main_file: "main.cpp",
        prepare: None,
        build: Some(CPP_BUILD),
        run: "./app",
    },
    Language {
        keys: &["csharp"],
        main_file: "Program.cs",
        prepare: Some("dotnet new console -o ."),
        build: None,
        run: "dotnet run --project .",
    },
    Language {
        keys: &["go"],
        main_file: "main.go",
        prepare: None,
        build: Some("go build -o app main.go"),
        run: "./app",
    },
    Language {
        keys: &["go_test"],
        main_file: "main_test.go",
        prepare: None,
        build: None,
        run: "go mod init main_test.go && go test main_test.go",
    },
    Language {
        keys: &["java"],
        main_file: "Main.java",
        prepare: None,
        build: Some(r#"javac -cp "/root/sandbox/runtime/java/*:." Main.java"#),
        run: r#"java -ea -cp "/root/sandbox/runtime/java/*:." Main"#,
    },
    Language {
        keys: &["junit"],
        main_file: "Main.java",
        prepare: None,
        build: Some(r#"javac -cp "/root/sandbox/runtime/java/*:." *.java"#),
        run: r#"java -ea -cp "/root/sandbox/runtime/java/*:." Main"#,
    },
    Language {
        keys: &["nodejs", "js"],
        main_file: "main.js",
        prepare: None,
        build: None,
        run: "node main.js",
    },
    Language {
        keys: &["ts", "typescript"],
        main_file: "main.ts",
        prepare: None,
        build: None,
        run: "tsx main.ts",
    },
    Language {
        keys: &["rust"],
        main_file: "main.rs",
        prepare: None,
        build: Some("rustc main.rs -o app"),
        run: "./app",
    },
    Language {
        keys: &["php"],
        main_file: "main.php",
        prepare: None,
        build: None,
        run: "php -f main.php",
    },
    Language {
        keys: &["bash"],
        main_file: "main.sh",
        prepare: None,
        build: None,
        run: "/bin/bash main.sh",
    },
    Language {
        keys: &["jest"],
        main_file: "main.test.ts",
        prepare: None,
        build: None,
        run: "npm run test",
    },
    Language {
        keys: &["lua"],
        main_file: "main.lua",
        prepare: None,
        build: None,
        run: "lua main.lua",
    },
    Language {
        keys: &["r"],
        main_file: "main.R",
        prepare: None,
        build: None,
        run: "Rscript main.R",
    },
    Language {
        keys: &["perl"],
        main_file: "main.pl",
        prepare: None,
        build: None,
        run: "perl main.pl",
    },
    Language {
        keys: &["d_ut"],
        main_file: "main.d",
        prepare: None,
        build: Some("dmd main.d -unittest -of=test"),
        run: "./test",
    },
    Language {
        keys: &["ruby"],
        main_file: "main.rb",
        prepare: None,
        build: None,
        run: "ruby main.rb",
    },
    Language {
        keys: &["scala"],
        main_file: "Main.scala",
        prepare: None,
        build: Some("scalac Main.scala"),
        run: r#"scala "$1""#,
    },
    Language {
        keys: &["julia"],
        main_file: "main.jl",
        prepare: None,
        build: None,
        run: "julia main.jl",
    },
    Language {
        keys: &["kotlin_script"],
        main_file: "main.kts",
        prepare: None,
        build: None,
        run: "kotlin main.kts",
    },
    Language {
        keys: &["verilog"],
        main_file: "main.sv",
        prepare: None,
        build: Some("iverilog -Wall -Winfloop -Wno-timescale -g2012 -s tb -o test.vvp main.sv"),
        run: "vvp -n test.vvp",
    },
    Language {
        keys: &["lean"],
        main_file: "Main.lean",
        prepare: None,
        build: None,
        run: "lake build || lean --run Main.lean",
    },
    Language {
        keys: &["swift"],
        main_file: "main.swift",
        prepare: None,
        build: Some("swiftc main.swift -o app"),
        run: "./app",
    },
    Language {
        keys: &["racket"],
        main_file: "main.rkt",
        prepare: None,
        build: None,
        run: "racket main.rkt",
    },
];

/// The language for `name`, case and surrounding space ignored.
pub(super) fn find(name: &str) -> Option<&'static Language> {
    let key = name.trim().to_lowercase();
    LANGUAGES.iter().find(|l| l.keys.contains(&key.as_str()))
}

impl Language {
    fn uses_python(&self) -> bool {
        self.keys.contains(&"python") || self.keys.contains(&"pytest")
    }

    /// The full `sh -c` script for one of this language's commands.
    pub(super) fn script(&self, command: &str) -> String {
        let mut script = String::from(PROFILE);
        script.push('\n');
        if self.uses_python() {
            script.push_str(PYTHON_ENV);
        }
        script.push_str(command);
        script
    }
}

/// Scala's entry object: the first `object Name` at the start of a line (ms-enclave's
/// `^\s*object\s+([A-Za-z_]\w*)\b`).
pub(super) fn scala_object(code: &str) -> Option<&str> {
    code.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("object")?;
        let name = rest.strip_prefix(|c: char| c.is_whitespace())?.trim_start();
        let end = name
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(name.len());
        let ident = &name[..end];
        let first = ident.chars().next()?;
        (first.is_ascii_alphabetic() || first == '_').then_some(ident)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_reference_is_there_once() {
        let reference = [
            "python",
            "pytest",
            "cpp",
            "csharp",
            "go",
            "go_test",
            "java",
            "junit",
            "nodejs",
            "js",
            "ts",
            "typescript",
            "rust",
            "php",
            "bash",
            "jest",
            "lua",
            "r",
            "perl",
            "d_ut",
            "ruby",
            "scala",
            "julia",
            "kotlin_script",
            "verilog",
            "lean",
            "swift",
            "racket",
        ];
        let mut keys: Vec<&str> = LANGUAGES
            .iter()
            .flat_map(|l| l.keys.iter().copied())
            .collect();
        keys.sort_unstable();
        let mut expected = reference.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn lookup_ignores_case_and_space() {
        assert_eq!(find(" Python ").unwrap().main_file, "main.py");
        assert_eq!(find("JS").unwrap().main_file, "main.js");
        assert_eq!(find("CPP").unwrap().build, Some(CPP_BUILD));
        assert!(find("cobol").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn java_keeps_its_classpath_quoted() {
        let java = find("java").unwrap();
        assert_eq!(
            java.build,
            Some(r#"javac -cp "/root/sandbox/runtime/java/*:." Main.java"#)
        );
        assert_eq!(
            java.run,
            r#"java -ea -cp "/root/sandbox/runtime/java/*:." Main"#
        );
    }

    #[test]
    fn python_scripts_find_an_interpreter() {
        let s = find("python").unwrap().script("\"$PY\" main.py");
        assert!(
            s.starts_with(PROFILE) && s.contains("command -v python3"),
            "{s}"
        );
        assert!(!find("bash").unwrap().script("x").contains("python3"));
    }

    #[test]
    fn scala_objects() {
        assert_eq!(scala_object("object Main extends App {\n}"), Some("Main"));
        assert_eq!(scala_object("// x\n  object  Hello_2 {"), Some("Hello_2"));
        assert_eq!(scala_object("objectMain {}"), None);
        assert_eq!(scala_object("class A\nobject 9x"), None);
        assert_eq!(scala_object("val object = 1"), None);
    }
}
