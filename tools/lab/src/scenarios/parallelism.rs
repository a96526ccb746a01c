//! 2. Partitions cap a group's parallelism.
//!
//! One topic with P partitions; one group with P+2 members, another with
//! fewer members than partitions. Once each group is stable, the group
//! coordinator's own description of it (DescribeGroups: every member and
//! the partitions assigned to it) says who reads what.

use rdkafka::consumer::Consumer;

use crate::error::Step;
use crate::kafka::{self, Inspector, TopicPlan};
use crate::{Lab, LabError, Outcome, Table, Verdict};

const TOPIC: &str = "parallelism.orders";
const PARTITIONS: usize = 6;

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let bootstrap = lab.infra.single()?.bootstrap();
    kafka::create_topic(&bootstrap, &TopicPlan::new(TOPIC, PARTITIONS as i32)).await?;
    let inspector = Inspector::new(&bootstrap)?;
    let mut table = Table::new(&[
        "members",
        "partitions",
        "idle members",
        "members with 1",
        "members with 2 or more",
        "partitions per member",
    ]);
    let mut found = Vec::new();
    for members in [PARTITIONS + 2, PARTITIONS - 2] {
        let group = format!("parallelism-{members}");
        let assignments = stable_assignments(&bootstrap, &inspector, &group, members).await?;
        let mut sizes: Vec<usize> = assignments.iter().map(Vec::len).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let idle = sizes.iter().filter(|&&n| n == 0).count();
        let one = sizes.iter().filter(|&&n| n == 1).count();
        let several = sizes.iter().filter(|&&n| n >= 2).count();
        table.row(vec![
            members.to_string(),
            PARTITIONS.to_string(),
            idle.to_string(),
            one.to_string(),
            several.to_string(),
            sizes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ]);
        found.push((members, idle, several));
    }
    let extra = PARTITIONS + 2;
    let (must_equal, extras_idle) = match found.as_slice() {
        [(more, idle_more, _), (fewer, idle_fewer, several)] => (
            if *idle_fewer == 0 {
                Verdict::DoesNotHold(format!(
                    "with {fewer} members for {PARTITIONS} partitions no member idled: {several} read two \
                     partitions each; a group may have fewer members than partitions"
                ))
            } else {
                Verdict::HoldsWithNuance(format!(
                    "with {fewer} members for {PARTITIONS} partitions, {idle_fewer} idled"
                ))
            },
            if *idle_more == more - PARTITIONS {
                Verdict::Holds
            } else {
                Verdict::DoesNotHold(format!(
                    "with {more} members for {PARTITIONS} partitions, {idle_more} idled (not {})",
                    more - PARTITIONS
                ))
            },
        ),
        _ => {
            let seen = Verdict::NotShown(format!(
                "(members, idle, with several) per group: {found:?}"
            ));
            (seen.clone(), seen)
        }
    };
    Ok(Outcome {
        setup: format!(
            "topic `{TOPIC}` with {PARTITIONS} partitions; a group of {} members, then a group of {} members, \
             all subscribed at once (librdkafka's default range assignor, the classic group protocol).",
            extra,
            PARTITIONS - 2
        ),
        tables: vec![table],
        notes: vec![
            "A partition is read by one member of a group at a time, so members beyond the partition count \
             wait as hot standbys; more partitions, not more members, raise a group's ceiling."
                .into(),
        ],
        verdicts: vec![
            ("parallelism.must-equal", must_equal),
            ("parallelism.extras-idle", extras_idle),
        ],
        chart: None,
    })
}

/// Starts `members` members of `group` and returns each one's partitions
/// once the coordinator reports the group stable with all of them and every
/// partition assigned exactly once; the members leave when this returns.
async fn stable_assignments(
    bootstrap: &str,
    inspector: &Inspector,
    group: &str,
    members: usize,
) -> Result<Vec<Vec<i32>>, LabError> {
    let mut running = Vec::new();
    for _ in 0..members {
        let consumer = kafka::consumer(bootstrap, group, &[])?;
        consumer
            .subscribe(&[TOPIC])
            .step(format!("subscribing a member of {group}"))?;
        // A member takes part in rebalances only while it polls.
        running.push(tokio::spawn(async move {
            loop {
                let _ = consumer.recv().await;
            }
        }));
    }
    let assignments = inspector
        .stable_group(group, PARTITIONS, Some(members))
        .await;
    for member in running {
        member.abort();
    }
    assignments
}
