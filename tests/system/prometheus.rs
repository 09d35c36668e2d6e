//! The Prometheus export, checked in the text exposition format.

use supervisor::{PrometheusMetrics, Supervisor};

use crate::support::{Cmd, Remote, shut_down, tree};

fn series(registry: &prometheus::Registry, family: &str) -> Vec<String> {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with('{'))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn states_and_transitions_are_exported_exactly() {
    let registry = prometheus::Registry::new();
    let one = Remote::healthy();
    let o = one.clone();
    let sup = Supervisor::builder()
        .metrics(PrometheusMetrics::with_namespace(&registry, "monogon").unwrap())
        .start(tree(move |ctx| ctx.run("one", o.runnable())));
    sup.settled().await;
    one.send(Cmd::Fail("once"));
    sup.settled().await;

    let states: Vec<String> = series(&registry, "monogon_supervisor_dn_state_total")
        .into_iter()
        .filter(|l| l.contains("dn=\"root.one\""))
        .collect();
    assert_eq!(
        states,
        [
            r#"monogon_supervisor_dn_state_total{dn="root.one",state="NODE_STATE_CANCELED"} 0"#,
            r#"monogon_supervisor_dn_state_total{dn="root.one",state="NODE_STATE_DEAD"} 0"#,
            r#"monogon_supervisor_dn_state_total{dn="root.one",state="NODE_STATE_DONE"} 0"#,
            r#"monogon_supervisor_dn_state_total{dn="root.one",state="NODE_STATE_HEALTHY"} 1"#,
            r#"monogon_supervisor_dn_state_total{dn="root.one",state="NODE_STATE_NEW"} 0"#,
        ]
    );
    let transitions: Vec<String> =
        series(&registry, "monogon_supervisor_dn_state_transition_count")
            .into_iter()
            .filter(|l| l.contains("dn=\"root.one\""))
            .collect();
    let prefix = "monogon_supervisor_dn_state_transition_count{dn=\"root.one\",";
    let expected: Vec<String> = [
        r#"new_state="NODE_STATE_DEAD",old_state="NODE_STATE_HEALTHY"} 1"#,
        r#"new_state="NODE_STATE_HEALTHY",old_state="NODE_STATE_NEW"} 2"#,
        r#"new_state="NODE_STATE_NEW",old_state="NODE_STATE_DEAD"} 2"#,
    ]
    .iter()
    .map(|s| format!("{prefix}{s}"))
    .collect();
    assert_eq!(
        transitions, expected,
        "the first transition counts from DEAD"
    );
    shut_down(sup).await;
}

#[test]
fn without_a_namespace_names_start_with_supervisor_and_registering_twice_is_an_error() {
    let registry = prometheus::Registry::new();
    let metrics = PrometheusMetrics::new(&registry).unwrap();
    supervisor::Metrics::notify_node_state(&metrics, "root", supervisor::NodeState::New);
    let names: Vec<String> = registry
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "supervisor_dn_state_total",
            "supervisor_dn_state_transition_count"
        ]
    );
    assert!(PrometheusMetrics::new(&registry).is_err());
    // The failed registration left the registry as it was.
    assert_eq!(registry.gather().len(), 2);
    assert!(PrometheusMetrics::with_namespace(&registry, "bad name").is_err());
}
