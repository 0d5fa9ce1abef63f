# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_enclave_global_optspecs
    string join \n json color= q/quiet v/verbose server= api-key= backend= namespace= context= agent-image= h/help V/version
end

function __fish_enclave_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_enclave_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_enclave_using_subcommand
    set -l cmd (__fish_enclave_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c enclave -n "__fish_enclave_needs_command" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_needs_command" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_needs_command" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_needs_command" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_needs_command" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_needs_command" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_needs_command" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_needs_command" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_needs_command" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_needs_command" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_needs_command" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_needs_command" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "create" -d 'Create a sandbox and print its id'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "ls" -d 'List sandboxes'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "ps" -d 'List sandboxes'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "inspect" -d 'Show a sandbox\'s full SandboxInfo as JSON'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "exec" -d 'Run a command in a sandbox; exits with the command\'s exit code'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "run" -d 'Create a sandbox, run one command in it, remove it'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "run-tool" -d 'Call a sandbox\'s tool; prints its output, exits with its status'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "tools" -d 'List a sandbox\'s tools (or all tools) and their OpenAI schemas'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "rm" -d 'Remove sandboxes (their containers are killed at once)'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "remove" -d 'Remove sandboxes (their containers are killed at once)'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "stop" -d 'Stop sandboxes: their processes end, they stay until removed'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "cp" -d 'Copy files and directories between this machine and a sandbox'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "shell" -d 'A Python REPL in a sandbox: one live session, its variables kept between inputs'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "server" -d 'Serve the HTTP API (ms-enclave\'s, and enclave\'s own) over the local engine or a cluster (--backend)'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "mcp" -d 'Serve sandboxes as MCP tools to agent hosts (stdio, or streamable HTTP with --http)'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c enclave -n "__fish_enclave_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c enclave -n "__fish_enclave_using_subcommand create" -l type -d 'Sandbox type: docker; docker_notebook (a Jupyter kernel for notebook_executor; default image enclave-notebook:1, built when missing); or volcengine (a SandboxFusion service\'s run_code API) [default: docker]' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l image -d 'Image to run [default: python:3.11-slim]' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l tool -d 'Enable a tool (repeatable), e.g. python_executor' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l memory -d 'Memory limit, e.g. 512m or 2g (0 = unlimited) [default: 4g]' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l cpus -d 'CPU limit in cores, e.g. 1.5 [default: 2]' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -s e -l env -d 'Environment variable (repeatable); KEY alone copies it from here' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l volume -d 'Bind mount a host path (repeatable)' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -s p -l port -d 'Publish a port; binds 127.0.0.1 unless an address is given (repeatable)' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -s w -l workdir -d 'Working directory in the sandbox [default: /sandbox]' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l runtime -d 'OCI runtime, e.g. runsc' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l label -d 'Container label (repeatable)' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l pids-limit -d 'Maximum number of processes (0 = unlimited) [default: 1024]' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l config -d 'An ms-enclave sandbox config (JSON file, or - for stdin); flags override it' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l base-url -d 'volcengine: the SandboxFusion service\'s URL, e.g. http://fusion:8080' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l volcengine-api-key -d 'volcengine: the key sent as `Authorization` to the service' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand create" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand create" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand create" -l dry-run -d 'With --backend kubernetes: print the manifests a create would send (a JSON List), and create nothing'
complete -c enclave -n "__fish_enclave_using_subcommand create" -l no-network -d 'No network at all'
complete -c enclave -n "__fish_enclave_using_subcommand create" -l privileged -d 'Run privileged (gives the sandbox the host\'s devices; only when you mean it)'
complete -c enclave -n "__fish_enclave_using_subcommand create" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand create" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand create" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand create" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand create" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand ls" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand ls" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand ls" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand ls" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand ls" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand ls" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand ls" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand ls" -s a -l all -d 'With `-q`, also list sandboxes your state file does not hold (other users\', other state directories\')'
complete -c enclave -n "__fish_enclave_using_subcommand ls" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand ls" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand ls" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand ls" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand ls" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand ps" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand ps" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand ps" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand ps" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand ps" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand ps" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand ps" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand ps" -s a -l all -d 'With `-q`, also list sandboxes your state file does not hold (other users\', other state directories\')'
complete -c enclave -n "__fish_enclave_using_subcommand ps" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand ps" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand ps" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand ps" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand ps" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand inspect" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand exec" -s t -l timeout -d 'Kill the command and everything it started after this many seconds (exit 124)' -r
complete -c enclave -n "__fish_enclave_using_subcommand exec" -s e -l env -d 'Environment variable for the command (repeatable)' -r
complete -c enclave -n "__fish_enclave_using_subcommand exec" -s w -l workdir -d 'Working directory for the command' -r
complete -c enclave -n "__fish_enclave_using_subcommand exec" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand exec" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand exec" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand exec" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand exec" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand exec" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand exec" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand exec" -s i -l interactive -d 'Forward stdin even when it is a terminal (it is forwarded whenever it is piped)'
complete -c enclave -n "__fish_enclave_using_subcommand exec" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand exec" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand exec" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand exec" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand exec" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand run" -l image -d 'Image to run [default: python:3.11-slim]' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l tool -d 'Enable a tool (repeatable), e.g. python_executor' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l memory -d 'Memory limit, e.g. 512m or 2g (0 = unlimited) [default: 4g]' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l cpus -d 'CPU limit in cores, e.g. 1.5 [default: 2]' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -s e -l env -d 'Environment variable (repeatable); KEY alone copies it from here' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l volume -d 'Bind mount a host path (repeatable)' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -s p -l port -d 'Publish a port; binds 127.0.0.1 unless an address is given (repeatable)' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -s w -l workdir -d 'Working directory in the sandbox [default: /sandbox]' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l runtime -d 'OCI runtime, e.g. runsc' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l label -d 'Container label (repeatable)' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l pids-limit -d 'Maximum number of processes (0 = unlimited) [default: 1024]' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l config -d 'An ms-enclave sandbox config (JSON file, or - for stdin); flags override it' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -s t -l timeout -d 'Kill the command and everything it started after this many seconds (exit 124)' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand run" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand run" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand run" -l no-network -d 'No network at all'
complete -c enclave -n "__fish_enclave_using_subcommand run" -l privileged -d 'Run privileged (gives the sandbox the host\'s devices; only when you mean it)'
complete -c enclave -n "__fish_enclave_using_subcommand run" -s i -l interactive -d 'Forward stdin even when it is a terminal (it is forwarded whenever it is piped)'
complete -c enclave -n "__fish_enclave_using_subcommand run" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand run" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand run" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand run" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand run" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -l arg -d 'One argument (repeatable); VALUE is a string unless the parameter takes something else and VALUE is that in JSON (`timeout=5`, `command=["ls","-l"]`)' -r
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -l args -d 'All arguments as a JSON object: inline, @FILE, or - for stdin (--arg overrides keys)' -r
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -s t -l timeout -d 'Give up after this many seconds: the call is cancelled and all it started killed (exit 124)' -r
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand run-tool" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand tools" -l schema -d 'Print one tool\'s OpenAI function schema (needs no sandbox or Docker without ID)' -r
complete -c enclave -n "__fish_enclave_using_subcommand tools" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand tools" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand tools" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand tools" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand tools" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand tools" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand tools" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand tools" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand tools" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand tools" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand tools" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand tools" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand rm" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand rm" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand rm" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand rm" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand rm" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand rm" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand rm" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand rm" -l all -d 'Remove every sandbox in your state file (others listed by `ls` are removed by id)'
complete -c enclave -n "__fish_enclave_using_subcommand rm" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand rm" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand rm" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand rm" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand rm" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand remove" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand remove" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand remove" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand remove" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand remove" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand remove" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand remove" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand remove" -l all -d 'Remove every sandbox in your state file (others listed by `ls` are removed by id)'
complete -c enclave -n "__fish_enclave_using_subcommand remove" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand remove" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand remove" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand remove" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand remove" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand stop" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand stop" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand stop" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand stop" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand stop" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand stop" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand stop" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand stop" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand stop" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand stop" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand stop" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand stop" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand cp" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand cp" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand cp" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand cp" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand cp" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand cp" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand cp" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand cp" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand cp" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand cp" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand cp" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand cp" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand shell" -s t -l timeout -d 'Interrupt an input that runs longer than SECS (the session and its variables stay)' -r
complete -c enclave -n "__fish_enclave_using_subcommand shell" -l image-dir -d 'Where images the session displays are saved' -r -F
complete -c enclave -n "__fish_enclave_using_subcommand shell" -l python -d 'The Python interpreter in the sandbox [default: python3, else python]' -r
complete -c enclave -n "__fish_enclave_using_subcommand shell" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand shell" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand shell" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand shell" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand shell" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand shell" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand shell" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand shell" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand shell" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand shell" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand shell" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand shell" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand server" -l host -d 'Address to listen on; one other than loopback needs a key (or --insecure)' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l port -d 'Port to listen on; 0 picks a free one (the `listening on` line says which)' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l log-format -d 'Format of the request log on stderr' -r -f -a "text\t'One line: time, method, path, status, duration'
json\t'One JSON object a line'"
complete -c enclave -n "__fish_enclave_using_subcommand server" -l shutdown-grace -d 'Seconds the calls under way may take to finish after SIGINT/SIGTERM' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l api-key -d 'The API key callers must send (`X-API-Key` header or `api_key` query)' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l api-key-file -d 'Read the API key from this file (its first line)' -r -F
complete -c enclave -n "__fish_enclave_using_subcommand server" -l api-keys-file -d 'Several callers\' keys, one `name:key` or `name:key:admin` a line; each sees only its own sandboxes' -r -F
complete -c enclave -n "__fish_enclave_using_subcommand server" -l cors-origin -d 'A web origin whose pages may call the server, e.g. http://localhost:3000 (repeatable)' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l max-body -d 'Largest JSON request body, e.g. 1m' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l max-archive -d 'Largest archive upload, e.g. 512m' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l state-dir -d 'Where the server records its sandboxes [default: $ENCLAVE_STATE_DIR/server]' -r -F
complete -c enclave -n "__fish_enclave_using_subcommand server" -l cleanup-interval -d 'Seconds between sweeps that remove errored, expired and idle sandboxes' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l ttl -d 'Remove each sandbox this many seconds after it was created' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l idle-timeout -d 'Remove a sandbox unused for this many seconds' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l pool-size -d 'Sandboxes `/pool/initialize` makes when the request does not say' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l pool-wait -d 'Seconds `/pool/execute` waits for a free sandbox when the request does not say' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l allow-mount -d 'Allow bind mounts of host paths under this prefix (repeatable)' -r -F
complete -c enclave -n "__fish_enclave_using_subcommand server" -l allow-network -d 'Allow this Docker network besides bridge and none (repeatable)' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l allow-volcengine -d 'Allow volcengine sandboxes that call this SandboxFusion URL (repeatable; `*`: any)' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l max-memory -d 'Largest `memory_limit` a sandbox may have, e.g. 4g [default: 8g]' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l max-cpus -d 'Most CPUs a sandbox may have [default: 4]' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l max-pids -d 'Largest `pids_limit` a sandbox may have [default: 4096]' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l max-sandboxes -d 'Most sandboxes one caller may have at once [default: 100]' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand server" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand server" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand server" -l cleanup-on-exit -d 'Remove every sandbox on exit (ms-enclave\'s behaviour); by default they stay for the next run'
complete -c enclave -n "__fish_enclave_using_subcommand server" -l insecure -d 'Allow listening on a non-loopback address without any key'
complete -c enclave -n "__fish_enclave_using_subcommand server" -l allow-privileged -d 'Allow `privileged: true`'
complete -c enclave -n "__fish_enclave_using_subcommand server" -l allow-named-volumes -d 'Allow Docker named volumes (shared by every caller that names them)'
complete -c enclave -n "__fish_enclave_using_subcommand server" -l allow-public-ports -d 'Allow ports published on addresses other than loopback'
complete -c enclave -n "__fish_enclave_using_subcommand server" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand server" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand server" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand server" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c enclave -n "__fish_enclave_using_subcommand server" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l host -d 'Address to listen on; one other than loopback needs --token-file' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l port -d 'Port to listen on; 0 picks a free one (the `listening on` line on stderr says which)' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l token-file -d 'Bearer tokens callers must send, one a line; each token\'s holder sees only the sandboxes it made' -r -F
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l allow-origin -d 'A web origin whose pages may call the server, e.g. http://localhost:6274 (repeatable)' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l allow-host -d 'A host name clients reach the server by, besides loopback and --host (repeatable; needed with --host 0.0.0.0)' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l tools -d 'Tools to offer, comma-separated [default: all]' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l sandbox -d 'Run calls without sandbox_id in this sandbox instead of a throwaway one' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l image -d 'Image of throwaway sandboxes and of sandbox_create\'s by default' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l allow-dir -d 'A host directory upload_file may read from and download_file write to (repeatable)' -r -F
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l call-timeout -d 'Seconds one call may run before what it started is killed' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l idle-expiry -d 'Minutes a sandbox from sandbox_create may sit unused before any enclave removes it' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l label -d 'A label for every sandbox made, KEY=VALUE (repeatable)' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l http -d 'Serve streamable HTTP at /mcp instead of stdio'
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l network -d 'Let new sandboxes reach the network unless sandbox_create says otherwise'
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l keep -d 'Leave sandbox_create\'s sandboxes at exit (their idle expiry still applies)'
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand mcp" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand completions" -l color -d 'When to use colours' -r -f -a "auto\t''
always\t''
never\t''"
complete -c enclave -n "__fish_enclave_using_subcommand completions" -l server -d 'Work with the sandboxes of the enclave server at URL instead of the local engine' -r
complete -c enclave -n "__fish_enclave_using_subcommand completions" -l api-key -d 'The server\'s API key' -r
complete -c enclave -n "__fish_enclave_using_subcommand completions" -l backend -d 'Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)' -r -f -a "docker\t''
kubernetes\t''"
complete -c enclave -n "__fish_enclave_using_subcommand completions" -l namespace -d 'kubernetes: the namespace of new Pods and of `ls` [default: the context\'s]' -r
complete -c enclave -n "__fish_enclave_using_subcommand completions" -l context -d 'kubernetes: the kubeconfig context [default: the current one]' -r
complete -c enclave -n "__fish_enclave_using_subcommand completions" -l agent-image -d 'kubernetes: put the agent into new Pods from this image by an init container, instead of copying it in over exec (see docs/kubernetes.md)' -r
complete -c enclave -n "__fish_enclave_using_subcommand completions" -l json -d 'Print results as JSON on stdout (errors too)'
complete -c enclave -n "__fish_enclave_using_subcommand completions" -s q -l quiet -d 'Print only ids or data; no notes on stderr'
complete -c enclave -n "__fish_enclave_using_subcommand completions" -s v -l verbose -d 'Say more about what happens'
complete -c enclave -n "__fish_enclave_using_subcommand completions" -s h -l help -d 'Print help'
complete -c enclave -n "__fish_enclave_using_subcommand completions" -s V -l version -d 'Print version'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "create" -d 'Create a sandbox and print its id'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "ls" -d 'List sandboxes'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "inspect" -d 'Show a sandbox\'s full SandboxInfo as JSON'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "exec" -d 'Run a command in a sandbox; exits with the command\'s exit code'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "run" -d 'Create a sandbox, run one command in it, remove it'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "run-tool" -d 'Call a sandbox\'s tool; prints its output, exits with its status'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "tools" -d 'List a sandbox\'s tools (or all tools) and their OpenAI schemas'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "rm" -d 'Remove sandboxes (their containers are killed at once)'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "stop" -d 'Stop sandboxes: their processes end, they stay until removed'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "cp" -d 'Copy files and directories between this machine and a sandbox'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "shell" -d 'A Python REPL in a sandbox: one live session, its variables kept between inputs'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "server" -d 'Serve the HTTP API (ms-enclave\'s, and enclave\'s own) over the local engine or a cluster (--backend)'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "mcp" -d 'Serve sandboxes as MCP tools to agent hosts (stdio, or streamable HTTP with --http)'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c enclave -n "__fish_enclave_using_subcommand help; and not __fish_seen_subcommand_from create ls inspect exec run run-tool tools rm stop cp shell server mcp completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
