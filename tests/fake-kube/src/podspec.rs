//! A Pod create request checked field by field: what the fake models becomes a [`PodPlan`];
//! what it does not model is refused by name.

use serde_json::{Map, Value};

use crate::status::{ApiError, ApiResult};

/// The one container the fake runs for a pod.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContainerPlan {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) command: Option<Vec<String>>,
    pub(crate) args: Option<Vec<String>>,
    pub(crate) env: Vec<String>,
    pub(crate) working_dir: Option<String>,
    pub(crate) stdin: bool,
    pub(crate) tty: bool,
    pub(crate) memory_bytes: Option<i64>,
    pub(crate) nano_cpus: Option<i64>,
    pub(crate) cap_add: Vec<String>,
    pub(crate) cap_drop: Vec<String>,
    pub(crate) no_new_privileges: bool,
    pub(crate) privileged: bool,
    pub(crate) read_only_root: bool,
    pub(crate) seccomp_unconfined: bool,
    pub(crate) mounts: Vec<MountPlan>,
}

/// One `volumeMounts` item: the pod volume `volume` at `path`.
#[derive(Debug, Clone)]
pub(crate) struct MountPlan {
    pub(crate) volume: String,
    pub(crate) path: String,
    pub(crate) read_only: bool,
}

/// What a valid create request asks for.
#[derive(Debug, Clone)]
pub(crate) struct PodPlan {
    pub(crate) name: String,
    pub(crate) container: ContainerPlan,
    /// `spec.initContainers`, run one after the other to completion before `container`.
    pub(crate) init_containers: Vec<ContainerPlan>,
    /// The names of the `emptyDir` volumes (the only source modelled).
    pub(crate) volumes: Vec<String>,
    pub(crate) active_deadline_seconds: Option<u64>,
}

const METADATA_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    // Go clients send `null` for it; the server sets it (only `null` is accepted, see `plan`).
    "creationTimestamp",
];

/// Pod spec fields, each modelled or knowingly accepted without effect (see `check_spec`).
const SPEC_FIELDS: &[&str] = &[
    "containers",
    "initContainers",
    "volumes",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "securityContext",
    "automountServiceAccountToken",
    "enableServiceLinks",
];

const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "workingDir",
    "stdin",
    "tty",
    "resources",
    "securityContext",
    "volumeMounts",
    // Defaults the real server fills in; a client that sends back what it read sends them.
    "terminationMessagePath",
    "terminationMessagePolicy",
];

/// Checks a create body for namespace `namespace` and plans the pod; `name` is the final name
/// (from `metadata.name`, or `generateName` plus a suffix).
pub(crate) fn plan(body: &Value, namespace: &str) -> ApiResult<PodPlan> {
    let object = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body is not a JSON object"))?;
    check_fields(
        "",
        object,
        &["apiVersion", "kind", "metadata", "spec", "status"],
    )?;
    check_type(object)?;
    let metadata = object_at(body, "metadata")?;
    check_fields("metadata.", metadata, METADATA_FIELDS)?;
    if metadata
        .get("creationTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Err(ApiError::not_modelled(
            "a set `metadata.creationTimestamp` (the server sets it)",
        ));
    }
    if let Some(ns) = metadata.get("namespace").and_then(Value::as_str) {
        if ns != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let name = pod_name(metadata)?;
    check_string_map(metadata, "labels")?;
    check_string_map(metadata, "annotations")?;
    let spec = object_at(body, "spec")?;
    check_fields("spec.", spec, SPEC_FIELDS)?;
    check_spec(spec, &name)?;
    // Read at delete time from the stored spec; checked here.
    optional_u64(spec, "terminationGracePeriodSeconds")?;
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("Pod", &name, "spec.containers", "Required value"))?;
    let [container] = containers.as_slice() else {
        return Err(ApiError::not_modelled(format!(
            "a pod with {} containers (exactly one is)",
            containers.len()
        )));
    };
    let volumes = volumes(spec, &name)?;
    let seccomp_unconfined = seccomp_unconfined(spec)?;
    let mut container = container_plan(container, "spec.containers[0]", &name, &volumes)?;
    container.seccomp_unconfined = seccomp_unconfined;
    let mut init_containers = init_containers(spec, &name, &volumes)?;
    for init in &mut init_containers {
        init.seccomp_unconfined = seccomp_unconfined;
    }
    check_unique_container_names(&container, &init_containers, &name)?;
    Ok(PodPlan {
        name,
        container,
        init_containers,
        volumes,
        active_deadline_seconds: optional_u64(spec, "activeDeadlineSeconds")?,
    })
}

fn check_type(object: &Map<String, Value>) -> ApiResult<()> {
    let kind = object.get("kind").and_then(Value::as_str);
    let version = object.get("apiVersion").and_then(Value::as_str);
    if kind.is_some_and(|k| k != "Pod") || version.is_some_and(|v| v != "v1") {
        return Err(ApiError::bad_request(format!(
            "the body is a {}/{}, not a v1 Pod",
            version.unwrap_or_default(),
            kind.unwrap_or_default()
        )));
    }
    Ok(())
}

/// Refuses any field outside `known`, naming it with its path.
pub(crate) fn check_fields(
    path: &str,
    object: &Map<String, Value>,
    known: &[&str],
) -> ApiResult<()> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(field) => Err(ApiError::not_modelled(format!("the field `{path}{field}`"))),
        None => Ok(()),
    }
}

fn object_at<'a>(body: &'a Value, field: &str) -> ApiResult<&'a Map<String, Value>> {
    match body.get(field) {
        Some(Value::Object(map)) => Ok(map),
        None => Err(ApiError::bad_request(format!("`{field}` is required"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "`{field}` must be an object"
        ))),
    }
}

fn pod_name(metadata: &Map<String, Value>) -> ApiResult<String> {
    let name = match (metadata.get("name"), metadata.get("generateName")) {
        (Some(Value::String(name)), _) if !name.is_empty() => name.clone(),
        (_, Some(Value::String(prefix))) => format!("{prefix}{}", random_suffix()),
        _ => {
            return Err(ApiError::invalid(
                "Pod",
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ))
        }
    };
    if !is_dns_subdomain(&name) {
        return Err(ApiError::invalid(
            "Pod",
            &name,
            "metadata.name",
            &format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower \
                 case alphanumeric characters, '-' or '.', and must start and end with an \
                 alphanumeric character (e.g. 'example.com', regex used for validation is \
                 '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        ));
    }
    Ok(name)
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// An RFC 1123 subdomain, as the real server requires of pod names.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// An RFC 1123 label, as the real server requires of container names and namespaces.
pub(crate) fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn check_string_map(object: &Map<String, Value>, field: &str) -> ApiResult<()> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(map)) if map.values().all(Value::is_string) => Ok(()),
        Some(_) => Err(ApiError::bad_request(format!(
            "`metadata.{field}` must map strings to strings"
        ))),
    }
}

/// The spec fields outside the container.
fn check_spec(spec: &Map<String, Value>, name: &str) -> ApiResult<()> {
    // Only `Never` is modelled: the default, `Always`, restarts exited containers with back-off,
    // which the fake does not do, so a missing restartPolicy is refused as well.
    match spec.get("restartPolicy").and_then(Value::as_str) {
        Some("Never") => {}
        Some(other) => {
            return Err(ApiError::not_modelled(format!(
                "`spec.restartPolicy: {other}` (only Never is)"
            )))
        }
        None => {
            return Err(ApiError::not_modelled(
                "a pod without `spec.restartPolicy` (its default, Always, is not; set Never)",
            ))
        }
    }
    // No service accounts or services exist in the fake, so there is no token to mount and no
    // service to link: both are accepted either way and have no effect.
    for flag in ["automountServiceAccountToken", "enableServiceLinks"] {
        if spec.get(flag).is_some_and(|v| !v.is_boolean()) {
            return Err(ApiError::invalid(
                "Pod",
                name,
                &format!("spec.{flag}"),
                "must be a boolean",
            ));
        }
    }
    Ok(())
}

/// `spec.securityContext`: only `seccompProfile` is modelled. `RuntimeDefault` is what Docker
/// applies anyway; `Unconfined` turns it off.
fn seccomp_unconfined(spec: &Map<String, Value>) -> ApiResult<bool> {
    let Some(context) = spec.get("securityContext") else {
        return Ok(false);
    };
    let context = context
        .as_object()
        .ok_or_else(|| ApiError::bad_request("`spec.securityContext` must be an object"))?;
    check_fields("spec.securityContext.", context, &["seccompProfile"])?;
    let Some(profile) = context.get("seccompProfile") else {
        return Ok(false);
    };
    match profile.get("type").and_then(Value::as_str) {
        Some("RuntimeDefault") => Ok(false),
        Some("Unconfined") => Ok(true),
        other => Err(ApiError::not_modelled(format!(
            "`spec.securityContext.seccompProfile.type: {}`",
            other.unwrap_or("(none)")
        ))),
    }
}

/// One container, regular or init, at `field` (`spec.containers[0]`, `spec.initContainers[1]`);
/// `volumes` are the pod's volume names, which its mounts must name.
fn container_plan(
    container: &Value,
    field: &str,
    pod: &str,
    volumes: &[String],
) -> ApiResult<ContainerPlan> {
    let object = container
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("`{field}` must be an object")))?;
    check_fields(&format!("{field}."), object, CONTAINER_FIELDS)?;
    let name = string(object, "name").unwrap_or_default();
    if !is_dns_label(&name) {
        return Err(not_a_label(pod, &format!("{field}.name"), &name));
    }
    let image = string(object, "image")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            ApiError::invalid("Pod", pod, &format!("{field}.image"), "Required value")
        })?;
    // The fake never pulls (there is no registry): every policy means "use the local image, or
    // ErrImagePull", so the value has no further effect.
    if let Some(policy) = string(object, "imagePullPolicy") {
        if !["Always", "IfNotPresent", "Never"].contains(&policy.as_str()) {
            return Err(ApiError::invalid(
                "Pod",
                pod,
                &format!("{field}.imagePullPolicy"),
                &format!("Unsupported value: \"{policy}\""),
            ));
        }
    }
    let mut plan = ContainerPlan {
        name,
        image,
        command: strings(object, "command", field)?,
        args: strings(object, "args", field)?,
        env: env(object, field)?,
        working_dir: string(object, "workingDir"),
        stdin: boolean(object, "stdin"),
        tty: boolean(object, "tty"),
        ..Default::default()
    };
    resources(object, field, &mut plan)?;
    security_context(object, field, &mut plan)?;
    plan.mounts = volume_mounts(object, field, pod, volumes)?;
    Ok(plan)
}

/// `spec.initContainers`, each checked as a regular container is.
fn init_containers(
    spec: &Map<String, Value>,
    pod: &str,
    volumes: &[String],
) -> ApiResult<Vec<ContainerPlan>> {
    let items = match spec.get("initContainers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::bad_request(
                "`spec.initContainers` must be a list",
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, c)| container_plan(c, &format!("spec.initContainers[{i}]"), pod, volumes))
        .collect()
}

/// Container names are unique across init and regular containers, as the real server requires.
fn check_unique_container_names(
    container: &ContainerPlan,
    init_containers: &[ContainerPlan],
    pod: &str,
) -> ApiResult<()> {
    let mut seen = vec![container.name.as_str()];
    for (i, init) in init_containers.iter().enumerate() {
        if seen.contains(&init.name.as_str()) {
            return Err(duplicate(
                pod,
                &format!("spec.initContainers[{i}].name"),
                &init.name,
            ));
        }
        seen.push(&init.name);
    }
    Ok(())
}

fn duplicate(pod: &str, field: &str, value: &str) -> ApiError {
    ApiError::invalid_because(
        "FieldValueDuplicate",
        "Pod",
        pod,
        field,
        &format!("Duplicate value: \"{value}\""),
    )
}

/// `spec.volumes`: only `emptyDir` is modelled (as a Docker volume); any other source is refused
/// by name. Returns the volume names, checked as the real server checks them (RFC 1123 labels,
/// unique).
fn volumes(spec: &Map<String, Value>, pod: &str) -> ApiResult<Vec<String>> {
    let items = match spec.get("volumes") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::bad_request("`spec.volumes` must be a list")),
    };
    let mut names: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("spec.volumes[{i}]");
        let volume = item
            .as_object()
            .ok_or_else(|| ApiError::bad_request(format!("`{field}` must be an object")))?;
        check_fields(&format!("{field}."), volume, &["name", "emptyDir"])?;
        let name = string(volume, "name").unwrap_or_default();
        if name.is_empty() {
            return Err(required(pod, &format!("{field}.name"), ""));
        }
        if !is_dns_label(&name) {
            return Err(not_a_label(pod, &format!("{field}.name"), &name));
        }
        if names.contains(&name) {
            return Err(duplicate(pod, &format!("{field}.name"), &name));
        }
        let Some(empty_dir) = volume.get("emptyDir") else {
            return Err(required(pod, &field, ": must specify a volume type"));
        };
        check_empty_dir(empty_dir, &format!("{field}.emptyDir"))?;
        names.push(name);
    }
    Ok(names)
}

/// `emptyDir`: `medium` "" (the node's disk; a Docker volume) and `sizeLimit`, which is checked
/// as a quantity but **not enforced** by the fake (a Docker local volume has no size limit).
/// `medium: Memory` (tmpfs) is not modelled.
fn check_empty_dir(empty_dir: &Value, field: &str) -> ApiResult<()> {
    let object = empty_dir
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("`{field}` must be an object")))?;
    check_fields(&format!("{field}."), object, &["medium", "sizeLimit"])?;
    match object.get("medium") {
        None | Some(Value::Null) => {}
        Some(Value::String(medium)) if medium.is_empty() => {}
        Some(other) => {
            return Err(ApiError::not_modelled(format!(
                "`{field}.medium: {other}` (only \"\" is)"
            )))
        }
    }
    quantity_at(empty_dir, "sizeLimit")?;
    Ok(())
}

/// `volumeMounts`: `name`, `mountPath` and `readOnly`; each must name a pod volume and use a path
/// not used before in this container (both 422 as on the real server). `mountPath` must be
/// absolute: Docker cannot mount elsewhere. `subPath`, `mountPropagation` and the rest are not
/// modelled.
fn volume_mounts(
    object: &Map<String, Value>,
    container: &str,
    pod: &str,
    volumes: &[String],
) -> ApiResult<Vec<MountPlan>> {
    let items = match object.get("volumeMounts") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "`{container}.volumeMounts` must be a list"
            )))
        }
    };
    let mut mounts: Vec<MountPlan> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("{container}.volumeMounts[{i}]");
        let mount = item
            .as_object()
            .ok_or_else(|| ApiError::bad_request(format!("`{field}` must be an object")))?;
        check_fields(
            &format!("{field}."),
            mount,
            &["name", "mountPath", "readOnly"],
        )?;
        let volume = string(mount, "name").unwrap_or_default();
        if volume.is_empty() {
            return Err(required(pod, &format!("{field}.name"), ""));
        }
        if !volumes.contains(&volume) {
            return Err(ApiError::invalid_because(
                "FieldValueNotFound",
                "Pod",
                pod,
                &format!("{field}.name"),
                &format!("Not found: \"{volume}\""),
            ));
        }
        let path = string(mount, "mountPath").unwrap_or_default();
        if path.is_empty() {
            return Err(required(pod, &format!("{field}.mountPath"), ""));
        }
        let path_problem = if !path.starts_with('/') {
            Some("must be an absolute path")
        } else if mounts.iter().any(|m| m.path == path) {
            Some("must be unique")
        } else {
            None
        };
        if let Some(problem) = path_problem {
            return Err(ApiError::invalid(
                "Pod",
                pod,
                &format!("{field}.mountPath"),
                &format!("Invalid value: \"{path}\": {problem}"),
            ));
        }
        if mount.get("readOnly").is_some_and(|v| !v.is_boolean()) {
            return Err(ApiError::bad_request(format!(
                "`{field}.readOnly` must be a boolean"
            )));
        }
        mounts.push(MountPlan {
            volume,
            path,
            read_only: boolean(mount, "readOnly"),
        });
    }
    Ok(mounts)
}

fn required(pod: &str, field: &str, detail: &str) -> ApiError {
    ApiError::invalid_because(
        "FieldValueRequired",
        "Pod",
        pod,
        field,
        &format!("Required value{detail}"),
    )
}

fn not_a_label(pod: &str, field: &str, value: &str) -> ApiError {
    ApiError::invalid(
        "Pod",
        pod,
        field,
        &format!(
            "Invalid value: \"{value}\": a lowercase RFC 1123 label must consist of lower case \
             alphanumeric characters or '-', and must start and end with an alphanumeric \
             character (e.g. 'my-name',  or '123-abc', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        ),
    )
}

fn string(object: &Map<String, Value>, field: &str) -> Option<String> {
    object
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn boolean(object: &Map<String, Value>, field: &str) -> bool {
    object.get(field).and_then(Value::as_bool).unwrap_or(false)
}

fn strings(object: &Map<String, Value>, field: &str, path: &str) -> ApiResult<Option<Vec<String>>> {
    let Some(value) = object.get(field) else {
        return Ok(None);
    };
    value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .map(Some)
        .ok_or_else(|| ApiError::bad_request(format!("`{path}.{field}` must be a list of strings")))
}

fn env(object: &Map<String, Value>, field: &str) -> ApiResult<Vec<String>> {
    let Some(items) = object.get("env").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|item| {
            let var = item
                .as_object()
                .ok_or_else(|| ApiError::bad_request("`env` items must be objects"))?;
            check_fields(&format!("{field}.env[]."), var, &["name", "value"])?;
            let name = string(var, "name")
                .ok_or_else(|| ApiError::bad_request("an `env` item has no name"))?;
            Ok(format!(
                "{name}={}",
                string(var, "value").unwrap_or_default()
            ))
        })
        .collect()
}

/// `resources`: limits become Docker's memory and CPU limits. Requests are accepted and have no
/// effect: they only steer a scheduler, and the fake's one "node" takes every pod.
fn resources(object: &Map<String, Value>, field: &str, plan: &mut ContainerPlan) -> ApiResult<()> {
    let Some(resources) = object.get("resources").and_then(Value::as_object) else {
        return Ok(());
    };
    check_fields(
        &format!("{field}.resources."),
        resources,
        &["limits", "requests"],
    )?;
    for part in ["limits", "requests"] {
        if let Some(map) = resources.get(part).and_then(Value::as_object) {
            check_fields(
                &format!("{field}.resources.{part}."),
                map,
                &["memory", "cpu"],
            )?;
        }
    }
    let limits = &object["resources"]["limits"];
    if let Some(memory) = quantity_at(limits, "memory")? {
        plan.memory_bytes = Some(memory.round() as i64);
    }
    if let Some(cpu) = quantity_at(limits, "cpu")? {
        plan.nano_cpus = Some((cpu * 1e9).round() as i64);
    }
    Ok(())
}

fn quantity_at(limits: &Value, field: &str) -> ApiResult<Option<f64>> {
    let Some(value) = limits.get(field) else {
        return Ok(None);
    };
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    parse_quantity(&text).map(Some).ok_or_else(|| {
        ApiError::bad_request(format!(
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {field} {text:?}"
        ))
    })
}

/// A Kubernetes quantity (`2`, `500m`, `4Gi`, `1G`, `4294967296`) as a number.
pub(crate) fn parse_quantity(text: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, factor)| text.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((text, 1.0));
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n * factor)
}

fn security_context(
    object: &Map<String, Value>,
    field: &str,
    plan: &mut ContainerPlan,
) -> ApiResult<()> {
    let Some(context) = object.get("securityContext").and_then(Value::as_object) else {
        return Ok(());
    };
    let path = &format!("{field}.securityContext.");
    check_fields(
        path,
        context,
        &[
            "allowPrivilegeEscalation",
            "privileged",
            "capabilities",
            "readOnlyRootFilesystem",
        ],
    )?;
    plan.no_new_privileges = context.get("allowPrivilegeEscalation") == Some(&Value::Bool(false));
    plan.privileged = boolean(context, "privileged");
    plan.read_only_root = boolean(context, "readOnlyRootFilesystem");
    if let Some(caps) = context.get("capabilities").and_then(Value::as_object) {
        check_fields(&format!("{path}capabilities."), caps, &["add", "drop"])?;
        let capabilities = format!("{path}capabilities");
        plan.cap_add = strings(caps, "add", &capabilities)?.unwrap_or_default();
        plan.cap_drop = strings(caps, "drop", &capabilities)?.unwrap_or_default();
    }
    Ok(())
}

fn optional_u64(spec: &Map<String, Value>, field: &str) -> ApiResult<Option<u64>> {
    match spec.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("`spec.{field}` must be a non-negative integer"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The Pod from the enclave manifest snapshot, as the backend sends it.
    fn enclave_pod() -> Value {
        let snap = include_str!(
            "../../../src/backend/kubernetes/snapshots/enclave__backend__kubernetes__manifest__tests__pod_without_network.snap"
        );
        let json_start = snap.find("\n[").expect("the snapshot holds a JSON list");
        let objects: Value = serde_json::from_str(&snap[json_start..]).expect("snapshot JSON");
        objects[0].clone()
    }

    #[test]
    fn accepts_and_models_the_enclave_pod() {
        let plan = plan(&enclave_pod(), "sandboxes").unwrap();
        assert_eq!(plan.name, "enclave-k3x9m2pa");
        let c = &plan.container;
        assert_eq!(c.memory_bytes, Some(4294967296));
        assert_eq!(c.nano_cpus, Some(2_000_000_000));
        assert_eq!(c.cap_drop, ["ALL"]);
        assert!(c.cap_add.contains(&"SETUID".to_string()));
        assert!(c.no_new_privileges && c.stdin && c.tty && !c.privileged);
        assert_eq!(c.working_dir.as_deref(), Some("/sandbox"));
    }

    #[test]
    fn refuses_fields_it_does_not_model() {
        let mut pod = enclave_pod();
        pod["spec"]["hostNetwork"] = json!(true);
        assert_refused(&pod, 400, "spec.hostNetwork");
    }

    /// The enclave Pod with the agent put in by an init container through an `emptyDir`.
    fn agent_pod() -> Value {
        let mut pod = enclave_pod();
        pod["spec"]["volumes"] =
            json!([{"name": "enclave-agent", "emptyDir": {"sizeLimit": "64Mi"}}]);
        pod["spec"]["initContainers"] = json!([{
            "name": "enclave-agent", "image": "agent:1",
            "command": ["/enclave-agent", "install", "/.enclave-agent/enclave-agent"],
            "volumeMounts": [{"name": "enclave-agent", "mountPath": "/.enclave-agent"}],
            "resources": {"requests": {"cpu": "100m", "memory": "32Mi"},
                          "limits": {"cpu": "100m", "memory": "32Mi"}},
            "securityContext": {"allowPrivilegeEscalation": false, "privileged": false,
                                "capabilities": {"drop": ["ALL"]}},
        }]);
        pod["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "enclave-agent", "mountPath": "/tmp/.enclave", "readOnly": true}]);
        pod
    }

    fn push(list: &mut Value, item: Value) {
        list.as_array_mut().expect("a list").push(item);
    }

    /// The create is refused with `code`, and the message names `field`.
    fn assert_refused(pod: &Value, code: u16, field: &str) {
        let e = plan(pod, "sandboxes").unwrap_err();
        let status = e.to_status();
        assert_eq!(e.code().as_u16(), code, "{status}");
        let message = status["message"].as_str().unwrap();
        assert!(message.contains(field), "{message}");
    }

    #[test]
    fn models_the_agent_init_container_and_its_volume() {
        let plan = plan(&agent_pod(), "sandboxes").unwrap();
        assert_eq!(plan.volumes, ["enclave-agent"]);
        let [init] = plan.init_containers.as_slice() else {
            panic!("one init container: {plan:?}");
        };
        assert_eq!(init.name, "enclave-agent");
        assert_eq!(init.memory_bytes, Some(32 * 1024 * 1024));
        assert_eq!(init.nano_cpus, Some(100_000_000));
        assert!(init.no_new_privileges && init.cap_drop == ["ALL"]);
        assert_eq!(init.mounts[0].path, "/.enclave-agent");
        assert!(!init.mounts[0].read_only);
        let main = &plan.container.mounts[0];
        assert_eq!(
            (main.volume.as_str(), main.path.as_str()),
            ("enclave-agent", "/tmp/.enclave")
        );
        assert!(main.read_only);
    }

    #[test]
    fn refuses_bad_volumes_and_mounts_as_the_real_server_does() {
        let mut pod = agent_pod();
        pod["spec"]["volumes"][0] = json!({"name": "enclave-agent", "hostPath": {"path": "/"}});
        assert_refused(&pod, 400, "spec.volumes[0].hostPath");

        let mut pod = agent_pod();
        pod["spec"]["volumes"][0]["emptyDir"]["medium"] = json!("Memory");
        assert_refused(&pod, 400, "spec.volumes[0].emptyDir.medium");

        let mut pod = agent_pod();
        pod["spec"]["volumes"][0]["name"] = json!("Agent");
        assert_refused(&pod, 422, "spec.volumes[0].name");

        let mut pod = agent_pod();
        push(
            &mut pod["spec"]["volumes"],
            json!({"name": "enclave-agent", "emptyDir": {}}),
        );
        assert_refused(&pod, 422, "spec.volumes[1].name: Duplicate value");

        let mut pod = agent_pod();
        pod["spec"]["volumes"][0] = json!({"name": "enclave-agent"});
        assert_refused(&pod, 422, "must specify a volume type");

        let mut pod = agent_pod();
        pod["spec"]["containers"][0]["volumeMounts"][0]["name"] = json!("other");
        assert_refused(
            &pod,
            422,
            "spec.containers[0].volumeMounts[0].name: Not found",
        );

        let mut pod = agent_pod();
        let mounts = &mut pod["spec"]["initContainers"][0]["volumeMounts"];
        let again = mounts[0].clone();
        push(mounts, again);
        assert_refused(
            &pod,
            422,
            "spec.initContainers[0].volumeMounts[1].mountPath",
        );

        let mut pod = agent_pod();
        pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = json!("relative");
        assert_refused(&pod, 422, "volumeMounts[0].mountPath");

        let mut pod = agent_pod();
        pod["spec"]["containers"][0]["volumeMounts"][0]["subPath"] = json!("x");
        assert_refused(&pod, 400, "spec.containers[0].volumeMounts[0].subPath");
    }

    #[test]
    fn init_container_names_are_checked_like_any_container_name() {
        let mut pod = agent_pod();
        pod["spec"]["initContainers"][0]["name"] = json!("sandbox");
        assert_refused(&pod, 422, "spec.initContainers[0].name: Duplicate value");

        let mut pod = agent_pod();
        let init = pod["spec"]["initContainers"][0].clone();
        push(&mut pod["spec"]["initContainers"], init);
        assert_refused(&pod, 422, "spec.initContainers[1].name: Duplicate value");

        let mut pod = agent_pod();
        pod["spec"]["initContainers"][0]["restartPolicy"] = json!("Always");
        assert_refused(&pod, 400, "spec.initContainers[0].restartPolicy");
    }

    #[test]
    fn a_bad_name_is_invalid() {
        let mut pod = enclave_pod();
        pod["metadata"]["name"] = json!("Bad_Name");
        let e = plan(&pod, "sandboxes").unwrap_err();
        assert_eq!(e.code().as_u16(), 422);
        assert_eq!(e.to_status()["reason"], "Invalid");
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("2000m"), Some(2.0));
        assert_eq!(parse_quantity("512Mi"), Some(536870912.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("x"), None);
    }
}
