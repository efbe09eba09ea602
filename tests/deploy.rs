//! The Kubernetes example in `deploy/kubernetes/`: every manifest parses, the fields that
//! matter hold (three replicas, probes on the admin port, a grace period longer than the drain,
//! non-root with a read-only root filesystem, the admin port kept off the Service, a
//! disruption budget), and the ConfigMap's config loads as the pods would mount it.

mod common;

use serde_json::Value;

use common::*;

fn manifest(name: &str) -> Value {
    let path = format!("{}/deploy/kubernetes/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_kubernetes_example_holds_together() {
    let kustomization = manifest("kustomization.yaml");
    let listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [
            "configmap.yaml",
            "deployment.yaml",
            "service.yaml",
            "pdb.yaml"
        ]
    );
    for name in &listed {
        let m = manifest(name);
        assert!(
            m["apiVersion"].is_string() && m["kind"].is_string(),
            "{name}"
        );
        assert_eq!(
            m["metadata"]["labels"]["app.kubernetes.io/name"],
            "portcullis"
        );
    }

    // The config, mounted as the pods see it: the main file and the rules directory.
    let configmap = manifest("configmap.yaml");
    let work = Workdir::new();
    let config = work.write(
        "config.yaml",
        configmap["data"]["config.yaml"].as_str().unwrap(),
    );
    work.write(
        "rules.d/rules.yaml",
        configmap["data"]["rules.yaml"].as_str().unwrap(),
    );
    let loaded = portcullis::config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let admin = loaded
        .listeners
        .iter()
        .find(|l| l.role == portcullis::config::Role::Admin)
        .expect("the admin listener is on");
    assert_eq!(admin.address.port(), 9901);
    let drain = loaded.server.shutdown_timeout.as_secs();

    let deployment = manifest("deployment.yaml");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 3);
    let pod = &spec["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > drain,
        "grace period {grace}s is not above the {drain}s drain"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    let ports = container["ports"].as_array().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "admin" && p["containerPort"] == 9901)
    );
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/readyz"),
    ] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    // The rules are mounted as a directory (updated in place, so the reload sees changes).
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"] == "/etc/portcullis/rules.d" && m.get("subPath").is_none())
    );

    let service = manifest("service.yaml");
    let exposed: Vec<&Value> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(
        exposed.iter().all(|p| p["targetPort"] != "admin"),
        "the admin port is not exposed"
    );

    let pdb = manifest("pdb.yaml");
    let min = pdb["spec"]["minAvailable"].as_u64().unwrap();
    assert!((1..3).contains(&min), "minAvailable {min} of 3 replicas");
}
