//! The dependency rule of ARCHITECTURE.md, read from `cargo metadata`: `indicators`,
//! `workflow` and `scenes` depend on no crate of ours, `analytics` never reaches bevy, wgpu or winit, and
//! nothing depends on `server`.

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::process::Command;

fn metadata() -> Value {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    // `cargo test` runs this in the package directory, so cargo finds the workspace from
    // there; a path baked in at compile time would point at whichever checkout built it.
    // Only this platform's packages: those of other platforms are never downloaded here.
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names its host");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

/// The resolved dependency graph: package names by id, the workspace members' names, and the
/// normal (non-dev) dependency edges by package id.
struct Graph {
    names: HashMap<String, String>,
    members: BTreeSet<String>,
    edges: HashMap<String, Vec<String>>,
}

fn graph(meta: &Value) -> Graph {
    let names: HashMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let members: BTreeSet<String> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| names[id.as_str().unwrap()].clone())
        .collect();
    let mut edges: HashMap<String, Vec<String>> = HashMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null() || k["kind"] == "build")
            })
            .map(|d| d["pkg"].as_str().unwrap().to_owned())
            .collect();
        edges.insert(node["id"].as_str().unwrap().to_owned(), deps);
    }
    Graph {
        names,
        members,
        edges,
    }
}

fn closure(start: &str, edges: &HashMap<String, Vec<String>>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start.to_owned()];
    while let Some(id) = stack.pop() {
        for d in edges.get(&id).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn dependency_rule_holds() {
    let meta = metadata();
    let Graph {
        names,
        members,
        edges,
    } = graph(&meta);
    for expected in [
        "indicators",
        "workflow",
        "analytics",
        "scenes",
        "twin",
        "server",
        "data-samples",
        "databrain-tests",
    ] {
        assert!(
            members.contains(expected),
            "workspace member {expected} is missing"
        );
    }
    let id_of = |name: &str| {
        names
            .iter()
            .find(|(id, n)| *n == name && edges.contains_key(*id))
            .unwrap()
            .0
            .clone()
    };
    for pure in ["indicators", "workflow", "scenes"] {
        let internal: Vec<String> = edges[&id_of(pure)]
            .iter()
            .map(|d| names[d].clone())
            .filter(|n| members.contains(n))
            .collect();
        assert!(
            internal.is_empty(),
            "{pure} must not depend on crates of ours, found {internal:?}"
        );
    }
    let analytics: BTreeSet<String> = closure(&id_of("analytics"), &edges)
        .iter()
        .map(|d| names[d].clone())
        .collect();
    for banned in ["bevy", "wgpu", "winit"] {
        let hits: Vec<&String> = analytics.iter().filter(|n| n.starts_with(banned)).collect();
        assert!(hits.is_empty(), "analytics reaches {hits:?}");
    }
    // Nothing depends on the server, counting dev-dependencies too.
    let server = id_of("server");
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let depends = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["pkg"] == server.as_str());
        assert!(
            !depends,
            "{} depends on server",
            names[node["id"].as_str().unwrap()]
        );
    }
}

/// The server's HTTP modules (`server/src/http/*.rs`) and the modules each names as
/// `crate::http::NAME`.
fn http_module_graph() -> HashMap<String, BTreeSet<String>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src/http");
    let mut graph = HashMap::new();
    for entry in std::fs::read_dir(&dir).expect("server/src/http exists") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "mod" {
            // The router: it names every route family, and none names it.
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let uses: BTreeSet<String> = text
            .match_indices("crate::http::")
            .filter_map(|(at, m)| {
                let rest = &text[at + m.len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let used = &rest[..end];
                (used != name && dir.join(format!("{used}.rs")).exists()).then(|| used.to_owned())
            })
            .collect();
        graph.insert(name, uses);
    }
    graph
}

#[test]
fn http_modules_depend_one_way() {
    let graph = http_module_graph();
    assert!(graph.len() >= 8, "{graph:?}");
    // Depth-first search for a cycle.
    fn visit(
        node: &str,
        graph: &HashMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(node) {
            return;
        }
        assert!(
            !path.iter().any(|p| p == node),
            "module cycle: {} -> {node}",
            path.join(" -> ")
        );
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
    // The bottom layers name no route family.
    for bottom in ["auth", "params", "work"] {
        for used in &graph[bottom] {
            assert!(
                ["auth", "params", "work"].contains(&used.as_str()),
                "{bottom} uses the route family {used}"
            );
        }
    }
}
