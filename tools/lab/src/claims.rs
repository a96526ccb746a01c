//! The claims the lab grades, each with the sentence of the study notes it
//! comes from.
//!
//! A scenario is an experiment; a claim is one statement it can prove or
//! refute. Notes often fold a true half and a false half into one sentence
//! ("the number of partitions must equal the number of consumers, otherwise
//! a consumer waits idle"), and grading the pair as one hides the false
//! half behind "holds with a nuance". So a scenario tests several claims,
//! each graded on its own from the run's counts, each with the verdict the
//! lab expects (the quick run in `cargo xtask test` fails on another one).
//!
//! Some sentences of the notes are about history, not behaviour ("exactly-once
//! appeared in Kafka 4.0"): no run on today's brokers can measure them. They
//! are listed as *background*, with the source that settles them (a KIP, the
//! documentation), and never given a verdict as if counted.

use crate::{Scenario, VerdictKind};

/// A sentence of the study notes the lab tests (five sets, `000` to `004`),
/// in its own words and translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// Which set of notes (`000` Italian, `001`/`003` Portuguese, `002`/`004` Russian).
    pub notes: &'static str,
    /// The sentence as the notes say it (Markdown markup and links dropped).
    pub original: &'static str,
    /// Its English translation.
    pub translation: &'static str,
}

/// How a claim is graded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grading {
    /// From the run's counts; the lab expects this verdict.
    Measured(VerdictKind),
    /// Not measurable by a run; settled by `source`, which says `verdict`.
    Background {
        /// What the source says of the claim.
        verdict: VerdictKind,
        /// Where that comes from (a KIP, the documentation).
        source: &'static str,
    },
}

/// One claim a scenario tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Its id, unique in the lab (`<scenario>.<what>`); a scenario's verdicts name it.
    pub id: &'static str,
    /// The claim, in plain English, as the lab tests it.
    pub text: &'static str,
    /// The sentence of the notes it comes from; `None` for a claim of the
    /// lab's own (a lesson the notes leave out, said so in LAB.md).
    pub quote: Option<Quote>,
    /// Measured (with the expected verdict) or background.
    pub grading: Grading,
}

const fn measured(
    id: &'static str,
    text: &'static str,
    quote: Quote,
    expected: VerdictKind,
) -> Claim {
    Claim {
        id,
        text,
        quote: Some(quote),
        grading: Grading::Measured(expected),
    }
}

/// A measured claim of the lab's own: a lesson the notes do not state.
const fn own(id: &'static str, text: &'static str, expected: VerdictKind) -> Claim {
    Claim {
        id,
        text,
        quote: None,
        grading: Grading::Measured(expected),
    }
}

const fn quote(notes: &'static str, original: &'static str, translation: &'static str) -> Quote {
    Quote {
        notes,
        original,
        translation,
    }
}

use VerdictKind::{DoesNotHold, Holds, HoldsWithNuance};

const PUBSUB: &[Claim] = &[
    measured(
        "pubsub.history",
        "A consumer group added later reads the whole history of the topic.",
        quote(
            "004",
            "Таким образом новый консюмер может перечитать вообще все когда бы то ни было отправленные сообщения.",
            "So a new consumer can reread every message ever sent.",
        ),
        HoldsWithNuance,
    ),
    measured(
        "pubsub.producer-unchanged",
        "New consumers need no change on the producer.",
        quote(
            "002",
            "При появлении новых консюмеров не нужно изменять код продюсера, т.к. новый консюмер просто подписывается на новый топик на МБ",
            "When new consumers appear, the producer's code need not change, since the new consumer simply subscribes to the topic on the broker.",
        ),
        Holds,
    ),
];

const PARALLELISM: &[Claim] = &[
    measured(
        "parallelism.must-equal",
        "The number of partitions must equal the number of consumers in the group, otherwise a consumer waits idle.",
        quote(
            "000",
            "il numero di partizioni deve essere uguale al numero di consumatori nel consumer group altrimenti un consumatore rimarrà in attesa senza consumare nessun messaggio.",
            "the number of partitions must equal the number of consumers in the consumer group, otherwise a consumer will wait without consuming any message.",
        ),
        DoesNotHold,
    ),
    measured(
        "parallelism.extras-idle",
        "A group's parallelism is capped by the partition count: members beyond it idle.",
        quote(
            "004",
            "Максимальное количество консюмеров в группе ограничено количеством партиций. Их может быть и больше, но лишние консюмеры будут простаивать.",
            "The number of consumers in a group is capped by the number of partitions. There can be more, but the extra consumers will idle.",
        ),
        Holds,
    ),
];

const KEY_ORDER: &[Claim] = &[
    measured(
        "key-order.per-partition",
        "All events of one key land in one partition and are read in the order written.",
        quote(
            "004",
            "Для каждого партишена гарантируется порядок записей в ней, т.е. порядок в котором записи были добавлены в партишн - это и порядок в котором они будут прочитаны консюмером.",
            "Each partition guarantees the order of its records: the order in which records were added to the partition is the order in which the consumer reads them.",
        ),
        Holds,
    ),
    measured(
        "key-order.random",
        "The order of writing to and reading from partitions is random.",
        quote(
            "002",
            "Порядок записи/чтения в/из партишенов СЛУЧАЙНЫ",
            "The order of writing to / reading from partitions is RANDOM.",
        ),
        DoesNotHold,
    ),
    measured(
        "key-order.across-partitions",
        "Across partitions the read order is not guaranteed.",
        quote(
            "004",
            "В случае чтения из нескольких партишенов порядок чтения записей не гарантируется.",
            "When reading from several partitions, the read order of records is not guaranteed.",
        ),
        Holds,
    ),
];

const COMMIT_TIMING: &[Claim] = &[measured(
    "commit-timing.guarantee",
    "Committing the offset before processing loses records in a crash (at-most-once), committing after \
     processing repeats them (at-least-once), and only deduplication by event id makes the effect happen once.",
    quote(
        "004",
        "Конечно консюмер может закомитить записи и до того как они обработаны, таким образом возможно, что некоторые записи не будут обработаны вообще никогда.",
        "Of course a consumer can commit records before they are processed, so some records may never be processed at all.",
    ),
    Holds,
)];

const BATCH_COMMITS: &[Claim] = &[measured(
    "batch-commits.trade-off",
    "Committing the offset every K records is faster than every record, and a crash makes up to K−1 records be processed again.",
    quote(
        "004",
        "Консюмер может коммитить сразу несколько записей, таким образом можно выиграть в производительности, но это может привести к возникновению дубликатов.",
        "A consumer can commit several records at once, which gains performance but can lead to duplicates.",
    ),
    Holds,
)];

const IDEMPOTENCE: &[Claim] = &[
    measured(
        "idempotence.duplicates",
        "A producer retrying a write whose acknowledgement was lost writes the record twice, unless enable.idempotence is on.",
        quote(
            "002",
            "Проблема в том, что одно и то же сообщение может дублироваться, если произошла ошибка сети при возврате акноледжмента на продюсер.",
            "The problem is that one and the same message can be duplicated if a network error happened while the acknowledgement returned to the producer.",
        ),
        Holds,
    ),
    measured(
        "idempotence.not-resent-by-default",
        "By default a producer does not resend a message.",
        quote(
            "004",
            "Настройки по-умолчанию указывают, что перепосылать сообщения не нужно.",
            "The default settings say that messages need not be resent.",
        ),
        DoesNotHold,
    ),
];

const TRANSACTIONS: &[Claim] = &[
    measured(
        "transactions.exactly-once",
        "A consume-transform-produce step with Kafka transactions is exactly-once inside Kafka, even when it crashes mid-transaction.",
        quote(
            "004",
            "Кафка поддерживает exactly once доставку сообщений.",
            "Kafka supports exactly-once delivery of messages.",
        ),
        HoldsWithNuance,
    ),
    Claim {
        id: "transactions.since-4.0",
        text: "Exactly-once appeared in Kafka 4.0.",
        quote: Some(quote(
            "002",
            "Появилась в кафке версии 4.0 и выше, благодаря распределенным транзакциям.",
            "Appeared in Kafka version 4.0 and above, thanks to distributed transactions.",
        )),
        grading: Grading::Background {
            verdict: DoesNotHold,
            source: "KIP-98 (Exactly Once Delivery and Transactional Messaging) shipped in Kafka 0.11.0, June 2017",
        },
    },
];

const REPLICATION: &[Claim] = &[
    measured(
        "replication.no-loss",
        "With three replicas, min.insync.replicas=2 and acks=all, no acknowledged record is lost when brokers fail.",
        quote(
            "004",
            "Если реплика сдохнет, данные не будут потеряна потому что каждая операция записи подтверждается как минимум двумя репликами.",
            "If a replica dies, no data is lost, because every write is confirmed by at least two replicas.",
        ),
        HoldsWithNuance,
    ),
    measured(
        "replication.one-down",
        "With three replicas and two in sync, the cluster stays writable when one broker dies.",
        quote(
            "004",
            "При N = 3 и двух синхронных репликах кластер останется доступным даже если одна из реплик сдохнет.",
            "With N = 3 and two in-sync replicas the cluster stays available even if one of the replicas dies.",
        ),
        Holds,
    ),
    measured(
        "replication.every-server",
        "Every server holds every partition.",
        quote(
            "002",
            "На самом деле на каждом сервере есть все партишены, каждый из которых получает копию сообщения от продюсера",
            "In fact every server has all the partitions, each of which gets a copy of the producer's message.",
        ),
        DoesNotHold,
    ),
    measured(
        "replication.more-partitions",
        "The more partitions, the lower the risk.",
        quote(
            "003",
            "quanto mais partições menores são os riscos",
            "the more partitions, the lower the risks",
        ),
        DoesNotHold,
    ),
    measured(
        "replication.zookeeper",
        "ZooKeeper notices a failed broker and elects the new leader of its partitions.",
        quote(
            "003",
            "caso algum desses Brokers não estiver saudável, o ZooKeeper faz o rebalanceamento de responsabilidades, e assim define um novo líder do Topic afetado",
            "if one of these brokers is not healthy, ZooKeeper rebalances the responsibilities and so elects a new leader of the affected topic",
        ),
        DoesNotHold,
    ),
];

const RETENTION: &[Claim] = &[measured(
    "retention.replay",
    "Kafka keeps the history, so a consumer group reset to the beginning rebuilds a view identical to the live one.",
    quote(
        "004",
        "Записи могут сохраняться перменентно и консюмеры могут читать историю событий и перестраивать свой стейт.",
        "Records can be kept permanently, and consumers can read the history of events and rebuild their state.",
    ),
    HoldsWithNuance,
)];

const COMPACTION: &[Claim] = &[measured(
    "compaction.last-per-key",
    "A compacted topic keeps the last record of every key, and a tombstone removes the key.",
    quote(
        "004",
        "сжатие лога топика в котором хранится информация о заказах удалит все события с ключем updated42, таким образом в Кафке останется только последнее обновление заказа.",
        "compacting the log of the orders topic deletes all events with the key updated42, so only the order's last update stays in Kafka.",
    ),
    HoldsWithNuance,
)];

const PULL: &[Claim] = &[measured(
    "pull.own-pace",
    "Consumers pull, so a slow consumer does not slow the producer: its lag grows, and drains once it speeds up.",
    quote(
        "004",
        "Это позволяет консюмерам самим решать когда и сколько записей обрабатыать, т.е. самостоятельно регулировать свою нагрузку.",
        "This lets consumers decide themselves when and how many records to process, that is, regulate their own load.",
    ),
    Holds,
)];

const WHEN_TO_SEND: &[Claim] = &[measured(
    "when-to-send.outbox",
    "Sending the event after the database write loses events, sending it before invents events for orders that never \
     committed, and the transactional outbox does neither.",
    quote(
        "004",
        "Также возможно накопление событий в базе и отправка их потом пакетом. В этом случае запись данных в базу и генерация данных для события может происходить в рамках одной транзакции.",
        "Events can also be collected in the database and sent later in a batch. Then writing the data and producing the event can happen in one transaction.",
    ),
    Holds,
)];

const ACKS: &[Claim] = &[
    measured(
        "acks.copy-before-ack",
        "Kafka acknowledges a write only once the partition's copy has it as well as the leader.",
        quote(
            "002",
            "Более того, кафка отправляет продюсеру акноледжмент ТОЛЬКО если и основной партишен был обновлен, и его копия.",
            "Moreover, Kafka sends the producer an acknowledgement ONLY if both the main partition and its copy were updated.",
        ),
        DoesNotHold,
    ),
    own(
        "acks.lost",
        "When the leader dies, a producer with acks=1 can lose records it was told were written; with acks=all \
         it loses none.",
        HoldsWithNuance,
    ),
];

impl Scenario {
    /// The claims it tests, in the order LAB.md lists them.
    pub fn claims(self) -> &'static [Claim] {
        match self {
            Scenario::PubSub => PUBSUB,
            Scenario::Parallelism => PARALLELISM,
            Scenario::KeyOrder => KEY_ORDER,
            Scenario::CommitTiming => COMMIT_TIMING,
            Scenario::BatchCommits => BATCH_COMMITS,
            Scenario::Idempotence => IDEMPOTENCE,
            Scenario::Transactions => TRANSACTIONS,
            Scenario::Replication => REPLICATION,
            Scenario::Retention => RETENTION,
            Scenario::Compaction => COMPACTION,
            Scenario::Pull => PULL,
            Scenario::WhenToSend => WHEN_TO_SEND,
            Scenario::Acks => ACKS,
        }
    }

    /// What a newcomer should take away, in one line (the summary's column).
    pub fn takeaway(self) -> &'static str {
        match self {
            Scenario::PubSub => {
                "Groups are independent readers of one log; a new group starts at the end unless told earliest."
            }
            Scenario::Parallelism => {
                "Partitions cap a group's parallelism; fewer members than partitions is fine, more leaves some idle."
            }
            Scenario::KeyOrder => {
                "Order is per partition, so per key; choose the key that must stay in order."
            }
            Scenario::CommitTiming => {
                "Commit after the effect and deduplicate by event id: that is effectively once."
            }
            Scenario::BatchCommits => {
                "A larger commit interval buys speed with redelivery; a dedup inbox makes the redelivery harmless."
            }
            Scenario::Idempotence => {
                "Producers retry by default; turn idempotence on so a retry cannot duplicate."
            }
            Scenario::Transactions => {
                "Transactions give exactly-once between Kafka topics for read_committed readers, since 0.11."
            }
            Scenario::Replication => {
                "Replicas, min.insync.replicas and acks=all keep acknowledged data; partitions do not, and KRaft, not ZooKeeper, elects leaders."
            }
            Scenario::Retention => "A replay rebuilds state only as far back as retention reaches.",
            Scenario::Compaction => {
                "Compaction keeps the last record per key, eventually; the key decides what survives."
            }
            Scenario::Pull => {
                "A slow consumer builds lag, not back-pressure; the producer never waits for it."
            }
            Scenario::WhenToSend => {
                "Write the event in the same database transaction (outbox) and let a relay send it."
            }
            Scenario::Acks => {
                "acks=1 is answered by the leader alone and dies with it; acks=all waits for the ISR, and both stall while a dead leader is fenced."
            }
        }
    }
}

/// The claim with this id, in any scenario.
pub fn find(id: &str) -> Option<(Scenario, &'static Claim)> {
    Scenario::ALL
        .into_iter()
        .flat_map(|s| s.claims().iter().map(move |c| (s, c)))
        .find(|(_, c)| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_ids_are_unique_and_name_their_scenario() {
        let mut ids = std::collections::BTreeSet::new();
        for scenario in Scenario::ALL {
            assert!(!scenario.claims().is_empty(), "{scenario} tests no claim");
            for claim in scenario.claims() {
                assert!(ids.insert(claim.id), "{} twice", claim.id);
                assert!(
                    claim.id.starts_with(&format!("{}.", scenario.name())),
                    "{} is not named after {scenario}",
                    claim.id
                );
                if let Some(quote) = claim.quote {
                    assert!(!quote.original.is_empty() && !quote.translation.is_empty());
                }
            }
        }
    }

    #[test]
    fn every_false_claim_of_the_notes_that_a_scenario_covers_expects_does_not_hold() {
        // The notes' outright errors (issue 27): each must be its own claim,
        // graded "does not hold".
        for id in [
            "parallelism.must-equal",
            "transactions.since-4.0",
            "replication.every-server",
            "replication.more-partitions",
            "replication.zookeeper",
            "key-order.random",
            "idempotence.not-resent-by-default",
        ] {
            let (_, claim) = find(id).unwrap_or_else(|| panic!("no claim {id}"));
            let verdict = match claim.grading {
                Grading::Measured(kind) | Grading::Background { verdict: kind, .. } => kind,
            };
            assert_eq!(verdict, VerdictKind::DoesNotHold, "{id}");
        }
    }
}
