//! Applies [`super::access`] to a running cluster: topics, SCRAM credentials
//! and ACLs, as the administrative principal.
//!
//! The Rust `rdkafka` crate wraps topic administration but not ACLs or
//! SCRAM credentials; librdkafka has both (`rd_kafka_CreateAcls`,
//! `rd_kafka_DeleteAcls`, `rd_kafka_AlterUserScramCredentials`), so they are
//! called here directly, each request on a queue of its own and its result
//! read back, on a blocking thread. Running Kafka's `kafka-acls` and
//! `kafka-configs` instead would start a JVM per principal and resource:
//! half a minute on every `cargo xtask infra up`.
//!
//! Everything here is idempotent: a credential is upserted, an ACL that
//! exists is created again without change, a topic that exists is left as
//! it is. [`revoke`] and [`grant`] take one binding away and give it back,
//! for the chaos run's revoked privilege.

use std::ffi::{CStr, CString, c_char};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::access::{self, Grant, Operation, Principal, Resource, Scope};

/// How long one admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// SCRAM iterations of the credentials created (Kafka's minimum is 4096):
/// the PBKDF2 rounds a client computes at each new connection.
pub const SCRAM_ITERATIONS: i32 = 8192;

/// Why the principals, ACLs or topics could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The admin client could not be created.
    #[error("the Kafka admin client could not be created")]
    Client(#[from] KafkaError),
    /// The cluster refused a request, or it failed.
    #[error("{what}: {reason}")]
    Refused {
        /// The request, e.g. `creating the ACLs of invoicing-service`.
        what: String,
        /// The broker's or librdkafka's reason.
        reason: String,
    },
    /// No answer came in time.
    #[error("{what}: no answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout {
        /// The request.
        what: String,
    },
    /// A name held a NUL byte.
    #[error("{0:?} holds a NUL byte")]
    Name(String),
    /// The blocking task failed.
    #[error("the provisioning task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Creates every topic of `scope` (with `partitions` partitions and
/// `replication_factor` copies; an existing one is left as it is), then every
/// principal's SCRAM credential and ACLs, on the cluster at `bootstrap`.
pub async fn provision(
    bootstrap: &str,
    scope: &Scope,
    partitions: i32,
    replication_factor: i32,
) -> Result<(), AclError> {
    let admin: AdminClient<DefaultClientContext> =
        access::admin_client_config(bootstrap).create()?;
    create_topics(
        &admin,
        &access::topics(scope),
        partitions,
        replication_factor,
    )
    .await?;
    let principals = access::principals(scope);
    tokio::task::spawn_blocking(move || {
        upsert_credentials(&admin, &principals)?;
        for principal in &principals {
            create_acls(&admin, &principal.name, &principal.grants)?;
        }
        Ok(())
    })
    .await?
}

/// Creates `principal`'s SCRAM credential and ACLs on the cluster at
/// `bootstrap`: a principal outside the flow's, which a private cluster adds
/// for a tool of its own (the benchmark's producer ceiling).
pub async fn add_principal(bootstrap: &str, principal: &Principal) -> Result<(), AclError> {
    let admin: AdminClient<DefaultClientContext> =
        access::admin_client_config(bootstrap).create()?;
    let principal = principal.clone();
    tokio::task::spawn_blocking(move || {
        upsert_credentials(&admin, std::slice::from_ref(&principal))?;
        create_acls(&admin, &principal.name, &principal.grants)
    })
    .await?
}

/// Takes `grant` away from `principal` on the cluster at `bootstrap`.
pub async fn revoke(bootstrap: &str, principal: &str, grant: &Grant) -> Result<(), AclError> {
    let admin: AdminClient<DefaultClientContext> =
        access::admin_client_config(bootstrap).create()?;
    let (principal, grant) = (principal.to_owned(), grant.clone());
    tokio::task::spawn_blocking(move || delete_acl(&admin, &principal, &grant)).await?
}

/// Gives `grant` to `principal` on the cluster at `bootstrap`.
pub async fn grant(bootstrap: &str, principal: &str, grant: &Grant) -> Result<(), AclError> {
    let admin: AdminClient<DefaultClientContext> =
        access::admin_client_config(bootstrap).create()?;
    let (principal, grants) = (principal.to_owned(), vec![grant.clone()]);
    tokio::task::spawn_blocking(move || create_acls(&admin, &principal, &grants)).await?
}

async fn create_topics(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[access::FlowTopic],
    partitions: i32,
    replication_factor: i32,
) -> Result<(), AclError> {
    let retention: Vec<String> = topics
        .iter()
        .map(|t| t.retention_ms().to_string())
        .collect();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&retention)
        .map(|(topic, retention)| {
            NewTopic::new(
                &topic.name,
                partitions,
                TopicReplication::Fixed(replication_factor),
            )
            .set("retention.ms", retention)
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(AclError::Refused {
                    what: format!("creating topic {topic}"),
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

fn c_string(value: &str) -> Result<CString, AclError> {
    CString::new(value).map_err(|_| AclError::Name(value.to_owned()))
}

/// The result event of one admin request, and the queue it came on.
struct Answer {
    event: *mut rd::rd_kafka_event_t,
    queue: *mut rd::rd_kafka_queue_t,
}

impl Drop for Answer {
    fn drop(&mut self) {
        // SAFETY: both were returned by librdkafka for this request and are
        // destroyed once, the event before the queue it was delivered on.
        unsafe {
            rd::rd_kafka_event_destroy(self.event);
            rd::rd_kafka_queue_destroy(self.queue);
        }
    }
}

/// Sends one admin request with `send` (given the client, the options and
/// a new queue) and waits for its answer; a request-level error is `Err`.
fn request(
    admin: &AdminClient<DefaultClientContext>,
    operation: rd::rd_kafka_admin_op_t,
    what: &str,
    send: impl FnOnce(
        *mut rd::rd_kafka_t,
        *const rd::rd_kafka_AdminOptions_t,
        *mut rd::rd_kafka_queue_t,
    ),
) -> Result<Answer, AclError> {
    let rk = admin.inner().native_ptr();
    let timeout_ms = i32::try_from(REQUEST_TIMEOUT.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `rk` is the live client `admin` owns; the options and the queue
    // are created and destroyed here (the queue with the answer), and
    // librdkafka copies what `send` passes it before returning.
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let options = rd::rd_kafka_AdminOptions_new(rk, operation);
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        send(rk, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms.saturating_add(5_000));
        rd::rd_kafka_AdminOptions_destroy(options);
        if event.is_null() {
            rd::rd_kafka_queue_destroy(queue);
            return Err(AclError::Timeout { what: what.into() });
        }
        let answer = Answer { event, queue };
        if rd::rd_kafka_event_error(event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(AclError::Refused {
                what: what.into(),
                reason: text(rd::rd_kafka_event_error_string(event)),
            });
        }
        Ok(answer)
    }
}

/// A librdkafka string, or "" for none.
///
/// SAFETY: `s` is null or a NUL-terminated string that outlives the call.
unsafe fn text(s: *const c_char) -> String {
    if s.is_null() {
        String::new()
    } else {
        // SAFETY: as the caller promises.
        unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
    }
}

/// `Err` with `what` if `error` (owned by a result) is an error.
///
/// SAFETY: `error` is null or an error object of a live result.
unsafe fn check(error: *const rd::rd_kafka_error_t, what: &str) -> Result<(), AclError> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: as the caller promises.
    unsafe {
        if rd::rd_kafka_error_code(error) == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Ok(());
        }
        Err(AclError::Refused {
            what: what.into(),
            reason: text(rd::rd_kafka_error_string(error)),
        })
    }
}

fn upsert_credentials(
    admin: &AdminClient<DefaultClientContext>,
    principals: &[Principal],
) -> Result<(), AclError> {
    let names = principals
        .iter()
        .map(|p| c_string(&p.name))
        .collect::<Result<Vec<_>, _>>()?;
    let what = "creating the SCRAM credentials";
    // SAFETY: the alterations are made from live strings, passed to one
    // request (which copies them) and destroyed after it.
    let answer = unsafe {
        let mut alterations: Vec<*mut rd::rd_kafka_UserScramCredentialAlteration_t> = names
            .iter()
            .zip(principals)
            .map(|(name, principal)| {
                rd::rd_kafka_UserScramCredentialUpsertion_new(
                    name.as_ptr(),
                    rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_512,
                    SCRAM_ITERATIONS,
                    principal.password.as_ptr(),
                    principal.password.len(),
                    std::ptr::null(),
                    0,
                )
            })
            .collect();
        let count = alterations.len();
        let answer = request(
            admin,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERUSERSCRAMCREDENTIALS,
            what,
            |rk, options, queue| {
                rd::rd_kafka_AlterUserScramCredentials(
                    rk,
                    alterations.as_mut_ptr(),
                    count,
                    options,
                    queue,
                );
            },
        );
        rd::rd_kafka_UserScramCredentialAlteration_destroy_array(alterations.as_mut_ptr(), count);
        answer?
    };
    // SAFETY: the responses belong to the answer, alive until it drops.
    unsafe {
        let result = rd::rd_kafka_event_AlterUserScramCredentials_result(answer.event);
        let mut count = 0;
        let responses = rd::rd_kafka_AlterUserScramCredentials_result_responses(result, &mut count);
        for i in 0..count {
            let response = *responses.add(i);
            let user = text(rd::rd_kafka_AlterUserScramCredentials_result_response_user(
                response,
            ));
            check(
                rd::rd_kafka_AlterUserScramCredentials_result_response_error(response),
                &format!("creating the SCRAM credential of {user}"),
            )?;
        }
    }
    Ok(())
}

fn resource_type(resource: Resource) -> rd::rd_kafka_ResourceType_t {
    match resource {
        Resource::Topic => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
        Resource::Group => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP,
    }
}

fn operation(operation: Operation) -> rd::rd_kafka_AclOperation_t {
    match operation {
        Operation::Read => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_READ,
        Operation::Write => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_WRITE,
        Operation::Describe => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_DESCRIBE,
    }
}

/// The binding (or, with `filter`, the filter matching exactly it) that
/// allows `principal` `grant` from any host.
fn binding(
    principal: &str,
    grant: &Grant,
    filter: bool,
) -> Result<*mut rd::rd_kafka_AclBinding_t, AclError> {
    let name = c_string(&grant.name)?;
    let principal = c_string(&format!("User:{principal}"))?;
    let host = c_string("*")?;
    let mut errstr = [0 as c_char; 256];
    let new = if filter {
        rd::rd_kafka_AclBindingFilter_new
    } else {
        rd::rd_kafka_AclBinding_new
    };
    // SAFETY: every string lives across the call, which copies them.
    let binding = unsafe {
        new(
            resource_type(grant.resource),
            name.as_ptr(),
            rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
            principal.as_ptr(),
            host.as_ptr(),
            operation(grant.operation),
            rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    if binding.is_null() {
        // SAFETY: librdkafka wrote a NUL-terminated message into `errstr`.
        let reason = unsafe { text(errstr.as_ptr()) };
        return Err(AclError::Refused {
            what: format!("the ACL {grant:?}"),
            reason,
        });
    }
    Ok(binding)
}

/// Bindings made for one request, destroyed after it.
struct Bindings(Vec<*mut rd::rd_kafka_AclBinding_t>);

impl Drop for Bindings {
    fn drop(&mut self) {
        // SAFETY: each was made by `binding` and is destroyed once.
        unsafe { rd::rd_kafka_AclBinding_destroy_array(self.0.as_mut_ptr(), self.0.len()) }
    }
}

fn create_acls(
    admin: &AdminClient<DefaultClientContext>,
    principal: &str,
    grants: &[Grant],
) -> Result<(), AclError> {
    let mut bindings = Bindings(Vec::with_capacity(grants.len()));
    for grant in grants {
        bindings.0.push(binding(principal, grant, false)?);
    }
    let what = format!("creating the ACLs of {principal}");
    let count = bindings.0.len();
    let answer = request(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
        &what,
        // SAFETY: the bindings live until after the request returns.
        |rk, options, queue| unsafe {
            rd::rd_kafka_CreateAcls(rk, bindings.0.as_mut_ptr(), count, options, queue);
        },
    )?;
    // SAFETY: the results belong to the answer, alive until it drops.
    unsafe {
        let result = rd::rd_kafka_event_CreateAcls_result(answer.event);
        let mut count = 0;
        let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut count);
        for i in 0..count {
            check(rd::rd_kafka_acl_result_error(*results.add(i)), &what)?;
        }
    }
    Ok(())
}

fn delete_acl(
    admin: &AdminClient<DefaultClientContext>,
    principal: &str,
    grant: &Grant,
) -> Result<(), AclError> {
    let mut filters = Bindings(vec![binding(principal, grant, true)?]);
    let what = format!("deleting an ACL of {principal}");
    let answer = request(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETEACLS,
        &what,
        // SAFETY: the filter lives until after the request returns.
        |rk, options, queue| unsafe {
            rd::rd_kafka_DeleteAcls(rk, filters.0.as_mut_ptr(), 1, options, queue);
        },
    )?;
    // SAFETY: the responses belong to the answer, alive until it drops.
    unsafe {
        let result = rd::rd_kafka_event_DeleteAcls_result(answer.event);
        let mut count = 0;
        let responses = rd::rd_kafka_DeleteAcls_result_responses(result, &mut count);
        for i in 0..count {
            check(
                rd::rd_kafka_DeleteAcls_result_response_error(*responses.add(i)),
                &what,
            )?;
        }
    }
    Ok(())
}
