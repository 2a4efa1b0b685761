//! Service templates: nginx, an echo server and a FastAPI app built in,
//! plus user templates read from `/templates/*.toml` when the host grants
//! that directory. Each renders to a backend-neutral workload.

mod user;

use berth_sdk::{
    Error, HealthCheck, Plugin, Port, Resources, Template, TemplateInfo, Workload, checks,
};
use serde_json::{Value, json};

struct Services;

/// A built-in template: its listing and how to render it.
struct Builtin {
    name: &'static str,
    description: &'static str,
    schema: fn() -> Value,
    render: fn(&Value) -> berth_sdk::Result<Workload>,
}

const BUILTINS: [Builtin; 3] = [
    Builtin {
        name: "nginx",
        description: "nginx serving its default site, unprivileged, on port 8080",
        schema: nginx_schema,
        render: nginx,
    },
    Builtin {
        name: "echo",
        description: "An HTTP echo server answering every request with a fixed text (busybox httpd)",
        schema: echo_schema,
        render: echo,
    },
    Builtin {
        name: "fastapi",
        description: "A FastAPI app from Python source, served by uvicorn (installs fastapi and uvicorn at start)",
        schema: fastapi_schema,
        render: fastapi,
    },
];

fn schema(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn common_properties(image: &str, port: u16) -> Value {
    json!({
        "image": {"type": "string", "description": "Image reference.", "default": image},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "Port the server listens on.", "default": port},
        "memory_mb": {"type": "integer", "minimum": 16, "description": "Memory limit, MiB.", "default": 256},
        "ttl_seconds": {"type": "integer", "minimum": 1, "description": "Seconds until the reaper removes it."}
    })
}

fn with(mut base: Value, more: Value) -> Value {
    if let (Some(map), Value::Object(more)) = (base.as_object_mut(), more) {
        map.extend(more);
    }
    base
}

fn nginx_schema() -> Value {
    schema(
        common_properties("docker.io/nginxinc/nginx-unprivileged:1.27-alpine", 8080),
        &[],
    )
}

fn echo_schema() -> Value {
    schema(
        with(
            common_properties("docker.io/library/busybox:1.36", 8080),
            json!({"text": {"type": "string", "maxLength": 4096, "description": "What every response says.", "default": "hello from berth"}}),
        ),
        &[],
    )
}

fn fastapi_schema() -> Value {
    schema(
        with(
            common_properties("docker.io/library/python:3.12-slim", 8000),
            json!({
                "app": {"type": "string", "maxLength": 65536, "description": "Python source defining a FastAPI `app`.",
                        "default": "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get('/')\ndef root():\n    return {'hello': 'berth'}\n"},
                "health_path": {"type": "string", "description": "Path of the health check.", "default": "/docs"}
            }),
        ),
        &[],
    )
}

fn text<'a>(params: &'a Value, key: &str, default: &'a str) -> &'a str {
    params.get(key).and_then(Value::as_str).unwrap_or(default)
}

fn number(params: &Value, key: &str, default: u64) -> u64 {
    params.get(key).and_then(Value::as_u64).unwrap_or(default)
}

/// The parts every built-in service shares: one port, network, a health
/// check, a memory limit.
fn service(
    name: &str,
    params: &Value,
    image: &str,
    port: u16,
    health: &str,
) -> berth_sdk::Result<Workload> {
    let image = text(params, "image", image).to_string();
    checks::image(&image)?;
    let port = u16::try_from(number(params, "port", port.into()))
        .map_err(|_| Error::invalid_input("port must be 1-65535"))?;
    Ok(Workload {
        name: name.into(),
        image,
        command: Vec::new(),
        args: Vec::new(),
        env: vec![("PORT".into(), port.to_string())],
        ports: vec![Port {
            container_port: port,
            host_port: None,
            protocol: "tcp".into(),
        }],
        resources: Resources {
            memory_mb: Some(number(params, "memory_mb", 256).min(u32::MAX.into()) as u32),
            cpu_millis: None,
            pids: None,
        },
        health: Some(HealthCheck {
            path: health.into(),
            port,
        }),
        mcp: None,
        network: true,
        writable_root: false,
        mounts: Vec::new(),
        ttl_seconds: params.get("ttl_seconds").and_then(Value::as_u64),
        labels: Vec::new(),
    })
}

fn nginx(params: &Value) -> berth_sdk::Result<Workload> {
    let mut workload = service(
        "nginx",
        params,
        "docker.io/nginxinc/nginx-unprivileged:1.27-alpine",
        8080,
        "/",
    )?;
    // nginx writes its pid and caches outside /tmp.
    workload.writable_root = true;
    Ok(workload)
}

fn echo(params: &Value) -> berth_sdk::Result<Workload> {
    let mut workload = service("echo", params, "docker.io/library/busybox:1.36", 8080, "/")?;
    workload.command = vec![
        "sh".into(),
        "-c".into(),
        "mkdir -p /tmp/www && printf '%s\\n' \"$ECHO_TEXT\" > /tmp/www/index.html && exec httpd -f -v -p \"$PORT\" -h /tmp/www".into(),
    ];
    workload.env.push((
        "ECHO_TEXT".into(),
        text(params, "text", "hello from berth").into(),
    ));
    Ok(workload)
}

fn fastapi(params: &Value) -> berth_sdk::Result<Workload> {
    let health = text(params, "health_path", "/docs").to_string();
    if !health.starts_with('/') {
        return Err(Error::invalid_input(format!(
            "health_path `{health}` must start with `/`"
        )));
    }
    let mut workload = service(
        "fastapi",
        params,
        "docker.io/library/python:3.12-slim",
        8000,
        &health,
    )?;
    let source = text(
        params,
        "app",
        "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get('/')\ndef root():\n    return {'hello': 'berth'}\n",
    );
    workload.command = vec![
        "sh".into(),
        "-c".into(),
        "pip install --no-cache-dir --target /tmp/deps fastapi uvicorn && printf '%s' \"$APP_SOURCE\" > /tmp/main.py && cd /tmp && PYTHONPATH=/tmp/deps exec python -m uvicorn main:app --host 0.0.0.0 --port \"$PORT\"".into(),
    ];
    workload.env.push(("APP_SOURCE".into(), source.into()));
    workload.env.push(("HOME".into(), "/tmp".into()));
    Ok(workload)
}

impl Plugin for Services {
    fn description() -> String {
        "Service templates: nginx, an echo server, a FastAPI app, and your own TOML templates"
            .into()
    }
}

impl Template for Services {
    fn templates() -> Vec<TemplateInfo> {
        let mut all: Vec<TemplateInfo> = BUILTINS
            .iter()
            .map(|b| TemplateInfo {
                name: b.name.into(),
                description: b.description.into(),
                params_schema: (b.schema)().to_string(),
                is_mcp_server: false,
            })
            .collect();
        for template in user::load() {
            if all.iter().any(|t| t.name == template.name) {
                berth_sdk::log(
                    berth_sdk::LogLevel::Warning,
                    format!(
                        "user template `{}` has the name of a built-in one and is ignored",
                        template.name
                    ),
                );
                continue;
            }
            all.push(template.info());
        }
        all
    }

    fn render(name: String, params: Value) -> berth_sdk::Result<Workload> {
        if let Some(builtin) = BUILTINS.iter().find(|b| b.name == name) {
            return (builtin.render)(&params);
        }
        match user::load().into_iter().find(|t| t.name == name) {
            Some(template) => template.render(&params),
            None => Err(Error::not_found(format!("template `{name}`"))),
        }
    }
}

berth_sdk::export_template!(Services);
