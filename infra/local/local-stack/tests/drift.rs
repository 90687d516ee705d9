//! The local stack cannot drift from `template.yaml`, checked offline: the table as
//! `aws_adapters::dynamo::schema` creates it, the queues and their pollers ([`expiry`],
//! [`streams`]), the bucket's notification and the schedule ([`bills`]), the console's user pool
//! and the JWT authorizer ([`cognito`], [`authorizer`]) against the template's resources, event
//! source mappings and events.
//!
//! Each check answers the differences it finds; the tests assert there are none, and
//! `every_check_sees_a_change_of_the_template` changes the parsed template in memory to show
//! that each check would fail.

// Test code: a failing unwrap is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_adapters::dynamo::schema::{KeyDefinition, table_definition};
use chrono::{FixedOffset, NaiveDate, TimeZone};
use local_stack::{authorizer, bills, cognito, expiry, streams};
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Differences = Vec<String>;
/// A key schema as (attribute, key type) pairs.
type Keys = Vec<(String, String)>;
/// Index name -> (key schema, projection type, no `NonKeyAttributes`).
type Indexes = BTreeMap<String, (Keys, Option<String>, bool)>;
/// A redrive policy: (dead-letter target, `maxReceiveCount`).
type Redrive = (Option<String>, Option<String>);

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("template.yaml: {e}"))
}

/// `value[a][b]...`, `Null` where missing.
fn at<'v>(value: &'v Value, path: &[&str]) -> &'v Value {
    path.iter()
        .fold(value, |v, key| v.get(key).unwrap_or(&Value::Null))
}

fn at_mut<'v>(value: &'v mut Value, path: &[&str]) -> &'v mut Value {
    path.iter().fold(value, |v, key| {
        v.get_mut(key)
            .unwrap_or_else(|| panic!("no {key} in the template"))
    })
}

/// A scalar as text (`true`, `180`, `S`); `None` for anything else.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn items(value: &Value) -> &[Value] {
    value.as_sequence().map(Vec::as_slice).unwrap_or_default()
}

/// `X.Attr` of `!GetAtt X.Attr` (short or long form).
fn get_att(value: &Value) -> Option<String> {
    let argument = match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => &tagged.value,
        _ => value.get("Fn::GetAtt")?,
    };
    match argument {
        Value::String(text) => Some(text.clone()),
        Value::Sequence(parts) => Some(
            parts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("."),
        ),
        _ => None,
    }
}

/// `X` of `!Ref X` (short or long form).
fn reference(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        _ => value.get("Ref")?.as_str(),
    }
}

/// The text of `!Sub text` (short or long form).
fn sub(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str(),
        _ => value.get("Fn::Sub")?.as_str(),
    }
}

/// Records `what: template X, local Y` when they differ.
fn compare<T: PartialEq + std::fmt::Debug>(
    differences: &mut Differences,
    what: &str,
    template: T,
    local: T,
) {
    if template != local {
        differences.push(format!("{what}: template {template:?}, local {local:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// The table.

fn keys(schema: &Value) -> Vec<(String, String)> {
    items(schema)
        .iter()
        .map(|key| {
            (
                scalar(at(key, &["AttributeName"])).unwrap_or_default(),
                scalar(at(key, &["KeyType"])).unwrap_or_default(),
            )
        })
        .collect()
}

fn local_keys(schema: &[KeyDefinition]) -> Vec<(String, String)> {
    schema
        .iter()
        .map(|key| (key.attribute.to_owned(), key.key_type.as_str().to_owned()))
        .collect()
}

fn table_differences(template: &Value) -> Differences {
    let table = at(template, &["Resources", "OrdersTable", "Properties"]);
    let local = table_definition();
    let mut differences = Vec::new();
    compare(
        &mut differences,
        "BillingMode",
        scalar(at(table, &["BillingMode"])),
        Some(local.billing_mode.as_str().to_owned()),
    );
    let attributes: BTreeSet<(String, String)> = items(at(table, &["AttributeDefinitions"]))
        .iter()
        .map(|a| {
            (
                scalar(at(a, &["AttributeName"])).unwrap_or_default(),
                scalar(at(a, &["AttributeType"])).unwrap_or_default(),
            )
        })
        .collect();
    let local_attributes: BTreeSet<(String, String)> = local
        .attributes
        .iter()
        .map(|(name, kind)| ((*name).to_owned(), kind.as_str().to_owned()))
        .collect();
    compare(
        &mut differences,
        "AttributeDefinitions",
        attributes,
        local_attributes,
    );
    compare(
        &mut differences,
        "KeySchema",
        keys(at(table, &["KeySchema"])),
        local_keys(&local.key_schema),
    );
    let indexes: Indexes = items(at(table, &["GlobalSecondaryIndexes"]))
        .iter()
        .map(|index| {
            (
                scalar(at(index, &["IndexName"])).unwrap_or_default(),
                (
                    keys(at(index, &["KeySchema"])),
                    scalar(at(index, &["Projection", "ProjectionType"])),
                    at(index, &["Projection", "NonKeyAttributes"]).is_null(),
                ),
            )
        })
        .collect();
    let local_indexes: Indexes = local
        .indexes
        .iter()
        .map(|index| {
            (
                index.name.to_owned(),
                (
                    local_keys(&index.key_schema),
                    Some(index.projection.as_str().to_owned()),
                    true,
                ),
            )
        })
        .collect();
    compare(
        &mut differences,
        "GlobalSecondaryIndexes (keys, projection, no NonKeyAttributes)",
        indexes,
        local_indexes,
    );
    compare(
        &mut differences,
        "StreamSpecification.StreamViewType",
        scalar(at(table, &["StreamSpecification", "StreamViewType"])),
        Some(local.stream_view_type.as_str().to_owned()),
    );
    compare(
        &mut differences,
        "TimeToLiveSpecification",
        (
            scalar(at(table, &["TimeToLiveSpecification", "AttributeName"])),
            scalar(at(table, &["TimeToLiveSpecification", "Enabled"])),
        ),
        (
            Some(local.ttl_attribute.to_owned()),
            Some("true".to_owned()),
        ),
    );
    differences
}

// ---------------------------------------------------------------------------------------------
// Queues.

/// SQS's value of an attribute a queue declaration leaves out.
fn sqs_default(attribute: &str) -> Option<&'static str> {
    Some(match attribute {
        "DelaySeconds" => "0",
        "VisibilityTimeout" => "30",
        "MessageRetentionPeriod" => "345600",
        "MaximumMessageSize" => "262144",
        "ReceiveMessageWaitTimeSeconds" => "0",
        "SqsManagedSseEnabled" => "true",
        "FifoQueue" => "false",
        "ContentBasedDeduplication" => "false",
        "DeduplicationScope" => "queue",
        "FifoThroughputLimit" => "perQueue",
        _ => return None,
    })
}

/// The attributes a queue resource gives the queue, by SQS attribute name (the redrive
/// policy apart), and its `RedrivePolicy`: (target, maxReceiveCount).
fn template_queue(template: &Value, id: &str) -> (BTreeMap<String, String>, Option<Redrive>) {
    let properties = at(template, &["Resources", id, "Properties"]);
    assert!(properties.is_mapping(), "no queue {id} in the template");
    let mut attributes = BTreeMap::new();
    let mut redrive = None;
    for (name, value) in properties.as_mapping().into_iter().flatten() {
        let name = name.as_str().unwrap_or_default();
        match name {
            "QueueName" => {}
            "RedrivePolicy" => {
                redrive = Some((
                    get_att(at(value, &["deadLetterTargetArn"])),
                    scalar(at(value, &["maxReceiveCount"])),
                ));
            }
            _ => {
                attributes.insert(name.to_owned(), scalar(value).unwrap_or_default());
            }
        }
    }
    (attributes, redrive)
}

/// Compares a local queue's attributes with queue resource `id`; answers the local redrive
/// policy's `maxReceiveCount` (if any) next to the template's.
fn queue_differences(
    differences: &mut Differences,
    template: &Value,
    id: &str,
    local: &[(aws_adapters::aws_sdk_sqs::types::QueueAttributeName, String)],
    dead_letter: Option<(&str, &str)>,
) {
    let (mut declared, redrive) = template_queue(template, id);
    let mut local_attributes = BTreeMap::new();
    let mut local_redrive = None;
    for (name, value) in local {
        if name.as_str() == "RedrivePolicy" {
            let policy: serde_json::Value = serde_json::from_str(value).unwrap();
            local_redrive = Some((
                policy["deadLetterTargetArn"].as_str().map(str::to_owned),
                Some(policy["maxReceiveCount"].to_string()),
            ));
        } else {
            local_attributes.insert(name.as_str().to_owned(), value.clone());
        }
    }
    // What the template leaves out is SQS's default: the local value must be that.
    for name in local_attributes.keys() {
        if !declared.contains_key(name) {
            let default = sqs_default(name)
                .unwrap_or_else(|| panic!("no SQS default known for {name}"))
                .to_owned();
            declared.insert(name.clone(), default);
        }
    }
    compare(
        differences,
        &format!("{id} attributes"),
        declared,
        local_attributes,
    );
    let expected = dead_letter.map(|(template_target, local_target)| {
        let (target, count) = redrive.clone().unwrap_or_default();
        compare(
            differences,
            &format!("{id} RedrivePolicy.deadLetterTargetArn"),
            target.as_deref(),
            Some(template_target),
        );
        (Some(local_target.to_owned()), count)
    });
    compare(
        differences,
        &format!("{id} RedrivePolicy (target, maxReceiveCount)"),
        expected,
        local_redrive,
    );
}

const LOCAL_DEAD_LETTER_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:order-expiry-dlq";

fn expiry_differences(template: &Value) -> Differences {
    let mut differences = Vec::new();
    queue_differences(
        &mut differences,
        template,
        "ExpiryQueue",
        &expiry::queue_attributes(LOCAL_DEAD_LETTER_ARN),
        Some(("ExpiryDeadLetterQueue.Arn", LOCAL_DEAD_LETTER_ARN)),
    );
    queue_differences(
        &mut differences,
        template,
        "ExpiryDeadLetterQueue",
        &expiry::dead_letter_queue_attributes(),
        None,
    );
    // The event source mapping of timeout-close, as the local poller behaves.
    let function = at(
        template,
        &["Resources", "TimeoutCloseFunction", "Properties"],
    );
    let mapping = at(function, &["Events", "Expiry"]);
    compare(
        &mut differences,
        "TimeoutCloseFunction event Expiry: type and queue",
        (
            scalar(at(mapping, &["Type"])),
            get_att(at(mapping, &["Properties", "Queue"])),
        ),
        (Some("SQS".to_owned()), Some("ExpiryQueue.Arn".to_owned())),
    );
    compare(
        &mut differences,
        "TimeoutCloseFunction event Expiry: BatchSize",
        scalar(at(mapping, &["Properties", "BatchSize"])),
        Some(expiry::BATCH_SIZE.to_string()),
    );
    compare(
        &mut differences,
        "TimeoutCloseFunction event Expiry: ReportBatchItemFailures",
        items(at(mapping, &["Properties", "FunctionResponseTypes"]))
            .iter()
            .any(|t| t.as_str() == Some("ReportBatchItemFailures")),
        expiry::REPORT_BATCH_ITEM_FAILURES,
    );
    // Lambda refuses a queue whose visibility timeout is below the function's timeout.
    let timeout: i32 = scalar(at(function, &["Timeout"]))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    if expiry::VISIBILITY_TIMEOUT_SECONDS < timeout {
        differences.push(format!(
            "the expiry queue's visibility ({} s) is below timeout-close's timeout ({timeout} s)",
            expiry::VISIBILITY_TIMEOUT_SECONDS
        ));
    }
    differences
}

fn events_differences(template: &Value) -> Differences {
    let mut differences = Vec::new();
    queue_differences(
        &mut differences,
        template,
        "EventsQueue",
        &streams::events_queue_attributes(),
        None,
    );
    queue_differences(
        &mut differences,
        template,
        "EventsFailureQueue",
        &streams::events_failure_queue_attributes(),
        None,
    );
    let name = match at(
        template,
        &["Resources", "EventsQueue", "Properties", "QueueName"],
    ) {
        Value::Tagged(tagged) => scalar(&tagged.value),
        other => scalar(other),
    }
    .unwrap_or_default();
    if !name.ends_with(&format!("-{}", streams::EVENTS_QUEUE)) {
        differences.push(format!(
            "EventsQueue QueueName: template {name:?}, local {:?} (after the stack's name)",
            streams::EVENTS_QUEUE
        ));
    }
    let mapping = at(
        template,
        &["Resources", "PublishEventsStream", "Properties"],
    );
    compare(
        &mut differences,
        "PublishEventsStream EventSourceArn",
        get_att(at(mapping, &["EventSourceArn"])),
        Some("OrdersTable.StreamArn".to_owned()),
    );
    compare(
        &mut differences,
        "PublishEventsStream BatchSize",
        scalar(at(mapping, &["BatchSize"])),
        Some(streams::BATCH_SIZE.to_string()),
    );
    compare(
        &mut differences,
        "PublishEventsStream StartingPosition",
        scalar(at(mapping, &["StartingPosition"])),
        Some(streams::STARTING_POSITION.to_owned()),
    );
    compare(
        &mut differences,
        "PublishEventsStream ReportBatchItemFailures",
        items(at(mapping, &["FunctionResponseTypes"]))
            .iter()
            .any(|t| t.as_str() == Some("ReportBatchItemFailures")),
        streams::REPORT_BATCH_ITEM_FAILURES,
    );
    compare(
        &mut differences,
        "PublishEventsStream BisectBatchOnFunctionError",
        scalar(at(mapping, &["BisectBatchOnFunctionError"])),
        Some(streams::BISECT_BATCH_ON_FUNCTION_ERROR.to_string()),
    );
    compare(
        &mut differences,
        "PublishEventsStream MaximumRetryAttempts",
        scalar(at(mapping, &["MaximumRetryAttempts"])),
        Some(streams::MAXIMUM_RETRY_ATTEMPTS.to_string()),
    );
    compare(
        &mut differences,
        "PublishEventsStream OnFailure destination",
        get_att(at(
            mapping,
            &["DestinationConfig", "OnFailure", "Destination"],
        )),
        Some("EventsFailureQueue.Arn".to_owned()),
    );
    differences
}

// ---------------------------------------------------------------------------------------------
// The bucket's notification and the schedule.

fn notification_differences(template: &Value) -> Differences {
    let mut differences = Vec::new();
    let event = at(
        template,
        &[
            "Resources",
            "ReconcileFunction",
            "Properties",
            "Events",
            "BillStored",
        ],
    );
    compare(
        &mut differences,
        "ReconcileFunction event BillStored: type and bucket",
        (
            scalar(at(event, &["Type"])),
            reference(at(event, &["Properties", "Bucket"])).map(str::to_owned),
        ),
        (Some("S3".to_owned()), Some("BillBucket".to_owned())),
    );
    let events: Vec<String> = match at(event, &["Properties", "Events"]) {
        Value::Sequence(list) => list.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    };
    compare(
        &mut differences,
        "BillStored Events",
        events,
        vec![bills::NOTIFICATION_EVENTS.to_owned()],
    );
    let rule = |name: &str| {
        items(at(event, &["Properties", "Filter", "S3Key", "Rules"]))
            .iter()
            .find(|rule| scalar(at(rule, &["Name"])).as_deref() == Some(name))
            .and_then(|rule| scalar(at(rule, &["Value"])))
    };
    compare(
        &mut differences,
        "BillStored prefix",
        rule("prefix"),
        Some(bills::NOTIFICATION_PREFIX.to_owned()),
    );
    compare(
        &mut differences,
        "BillStored suffix",
        rule("suffix"),
        bills::NOTIFICATION_SUFFIX.map(str::to_owned),
    );
    differences
}

/// A cron field's values (`5`, `9-12`, `1,3`, `*` within `all`).
fn cron_values(field: &str, all: std::ops::RangeInclusive<u32>) -> BTreeSet<u32> {
    if field == "*" {
        return all.collect();
    }
    field
        .split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((from, to)) => {
                (from.parse::<u32>().unwrap()..=to.parse::<u32>().unwrap()).collect::<Vec<_>>()
            }
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

/// The template's schedule: (minutes, hours, time zone), the other fields every day.
fn template_schedule(
    template: &Value,
    differences: &mut Differences,
) -> (BTreeSet<u32>, BTreeSet<u32>, Option<String>) {
    let event = at(
        template,
        &[
            "Resources",
            "BillFetchFunction",
            "Properties",
            "Events",
            "Hourly",
        ],
    );
    compare(
        differences,
        "BillFetchFunction event Hourly: type",
        scalar(at(event, &["Type"])),
        Some("ScheduleV2".to_owned()),
    );
    let expression = scalar(at(event, &["Properties", "ScheduleExpression"])).unwrap_or_default();
    let fields: Vec<&str> = expression
        .strip_prefix("cron(")
        .and_then(|e| e.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a cron expression: {expression}"))
        .split_whitespace()
        .collect();
    assert_eq!(fields.len(), 6, "{expression}");
    compare(
        differences,
        "schedule day of month, month, day of week, year",
        &fields[2..],
        &["*", "*", "?", "*"][..],
    );
    (
        cron_values(fields[0], 0..=59),
        cron_values(fields[1], 0..=23),
        scalar(at(event, &["Properties", "ScheduleExpressionTimezone"])),
    )
}

fn schedule_differences(template: &Value) -> Differences {
    let mut differences = Vec::new();
    let (minutes, hours, zone) = template_schedule(template, &mut differences);
    compare(
        &mut differences,
        "schedule minutes",
        minutes.clone(),
        BTreeSet::from([bills::SCHEDULE_MINUTE]),
    );
    compare(
        &mut differences,
        "schedule hours",
        hours.clone(),
        bills::SCHEDULE_HOURS.collect(),
    );
    compare(
        &mut differences,
        "schedule time zone",
        zone,
        Some(bills::SCHEDULE_TIMEZONE.to_owned()),
    );
    // What the local schedule does: two days of runs, from a midnight in Beijing.
    let beijing = FixedOffset::east_opt(8 * 3600).unwrap();
    let day = NaiveDate::from_ymd_opt(2024, 3, 9).unwrap();
    let mut expected = Vec::new();
    for day in [day, day.succ_opt().unwrap()] {
        for hour in &hours {
            for minute in &minutes {
                let run = beijing
                    .from_local_datetime(&day.and_hms_opt(*hour, *minute, 0).unwrap())
                    .unwrap();
                expected.push(run.with_timezone(&chrono::Utc));
            }
        }
    }
    let mut at_time = beijing
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut local = Vec::new();
    for _ in 0..expected.len() {
        at_time = bills::next_run(at_time);
        local.push(at_time);
    }
    compare(&mut differences, "scheduled runs", expected, local);
    differences
}

// ---------------------------------------------------------------------------------------------
// The console's user pool and the JWT authorizer.

const LOCAL_POOL_ID: &str = "us-east-1_LOCAL";

/// The ids of the resources of `kind` whose `UserPoolId` is `!Ref pool`.
fn of_pool<'t>(template: &'t Value, kind: &str, pool: &str) -> Vec<(&'t str, &'t Value)> {
    at(template, &["Resources"])
        .as_mapping()
        .into_iter()
        .flatten()
        .filter(|(_, resource)| scalar(at(resource, &["Type"])).as_deref() == Some(kind))
        .filter(|(_, resource)| {
            reference(at(resource, &["Properties", "UserPoolId"])) == Some(pool)
        })
        .map(|(id, resource)| (id.as_str().unwrap_or_default(), resource))
        .collect()
}

fn authorizer_differences(template: &Value) -> Differences {
    let mut differences = Vec::new();
    let authorizers = at(
        template,
        &["Resources", "HttpApi", "Properties", "Auth", "Authorizers"],
    );
    let names: Vec<&str> = authorizers
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(name, _)| name.as_str())
        .collect();
    let [name] = names[..] else {
        differences.push(format!(
            "HttpApi authorizers: template {names:?}, local one (the console's)"
        ));
        return differences;
    };
    let configured = at(authorizers, &[name]);
    compare(
        &mut differences,
        &format!("{name} IdentitySource"),
        scalar(at(configured, &["IdentitySource"])),
        Some(authorizer::IDENTITY_SOURCE.to_owned()),
    );
    // The issuer names the pool as `${Pool}`: the local stack's issuer for a pool id.
    let issuer = sub(at(configured, &["JwtConfiguration", "issuer"])).unwrap_or_default();
    let pool = issuer
        .rsplit_once("${")
        .and_then(|(_, rest)| rest.strip_suffix('}'))
        .unwrap_or_default();
    compare(
        &mut differences,
        &format!("{name} issuer (for pool {LOCAL_POOL_ID})"),
        issuer
            .replace("${AWS::Region}", test_support::moto::REGION)
            .replace(&format!("${{{pool}}}"), LOCAL_POOL_ID),
        authorizer::issuer(test_support::moto::REGION, LOCAL_POOL_ID),
    );
    compare(
        &mut differences,
        &format!("{pool} Type"),
        scalar(at(template, &["Resources", pool, "Type"])),
        Some("AWS::Cognito::UserPool".to_owned()),
    );
    // The audience: the pool's one app client, the local stack's.
    let audience: Vec<Option<&str>> = match at(configured, &["JwtConfiguration", "audience"]) {
        Value::Sequence(items) => items.iter().map(reference).collect(),
        other => vec![reference(other)],
    };
    let clients = of_pool(template, "AWS::Cognito::UserPoolClient", pool);
    compare(
        &mut differences,
        &format!("{name} audience"),
        audience,
        clients.iter().map(|(id, _)| Some(*id)).collect(),
    );
    for (id, client) in &clients {
        let client = at(client, &["Properties"]);
        compare(
            &mut differences,
            &format!("{id} GenerateSecret"),
            scalar(at(client, &["GenerateSecret"])),
            Some("false".to_owned()),
        );
        compare(
            &mut differences,
            &format!("{id} ExplicitAuthFlows"),
            items(at(client, &["ExplicitAuthFlows"]))
                .iter()
                .filter_map(scalar)
                .collect::<BTreeSet<_>>(),
            cognito::EXPLICIT_AUTH_FLOWS
                .iter()
                .map(|flow| (*flow).to_owned())
                .collect(),
        );
    }
    let properties = at(template, &["Resources", pool, "Properties"]);
    compare(
        &mut differences,
        &format!("{pool} AllowAdminCreateUserOnly"),
        scalar(at(
            properties,
            &["AdminCreateUserConfig", "AllowAdminCreateUserOnly"],
        )),
        Some(cognito::ALLOW_ADMIN_CREATE_USER_ONLY.to_string()),
    );
    compare(
        &mut differences,
        &format!("{pool} UsernameConfiguration.CaseSensitive"),
        scalar(at(properties, &["UsernameConfiguration", "CaseSensitive"])),
        Some(cognito::USERNAME_CASE_SENSITIVE.to_string()),
    );
    let policy = at(properties, &["Policies", "PasswordPolicy"]);
    let local = cognito::PASSWORD_POLICY;
    for (field, value) in [
        ("MinimumLength", local.minimum_length.to_string()),
        ("RequireLowercase", local.require_lowercase.to_string()),
        ("RequireUppercase", local.require_uppercase.to_string()),
        ("RequireNumbers", local.require_numbers.to_string()),
        ("RequireSymbols", local.require_symbols.to_string()),
        (
            "TemporaryPasswordValidityDays",
            local.temporary_password_validity_days.to_string(),
        ),
    ] {
        compare(
            &mut differences,
            &format!("{pool} PasswordPolicy.{field}"),
            scalar(at(policy, &[field])),
            Some(value),
        );
    }
    compare(
        &mut differences,
        &format!("{pool} groups (name, precedence)"),
        of_pool(template, "AWS::Cognito::UserPoolGroup", pool)
            .iter()
            .map(|(_, group)| {
                (
                    scalar(at(group, &["Properties", "GroupName"])).unwrap_or_default(),
                    scalar(at(group, &["Properties", "Precedence"])).unwrap_or_default(),
                )
            })
            .collect::<BTreeSet<_>>(),
        cognito::GROUPS
            .iter()
            .map(|(group, precedence)| ((*group).to_owned(), precedence.to_string()))
            .collect(),
    );
    differences
}

// ---------------------------------------------------------------------------------------------

fn assert_none(differences: Differences) {
    assert!(
        differences.is_empty(),
        "the local stack differs from template.yaml:\n  {}",
        differences.join("\n  ")
    );
}

#[test]
fn the_table_is_the_template_s() {
    assert_none(table_differences(&template()));
}

#[test]
fn the_expiry_queues_and_their_poller_are_the_template_s() {
    assert_none(expiry_differences(&template()));
}

#[test]
fn the_events_queues_and_the_stream_poller_are_the_template_s() {
    assert_none(events_differences(&template()));
}

#[test]
fn the_bucket_notification_is_the_template_s() {
    assert_none(notification_differences(&template()));
    assert!(bills::notifies("bills/2024-03-09/trade.zip"));
    assert!(bills::notifies("bills/2024-03-09/empty.json"));
    assert!(!bills::notifies("reports/2024-03-09/summary.json"));
}

#[test]
fn the_schedule_is_the_template_s() {
    assert_none(schedule_differences(&template()));
}

#[test]
fn the_user_pool_and_the_jwt_authorizer_are_the_template_s() {
    assert_none(authorizer_differences(&template()));
}

/// A change to any compared value of the template is seen.
#[test]
fn every_check_sees_a_change_of_the_template() {
    type Check = fn(&Value) -> Differences;
    let changes: &[(&[&str], Value, Check)] = &[
        (
            &["Resources", "OrdersTable", "Properties", "BillingMode"],
            Value::from("PROVISIONED"),
            table_differences,
        ),
        (
            &[
                "Resources",
                "OrdersTable",
                "Properties",
                "StreamSpecification",
                "StreamViewType",
            ],
            Value::from("NEW_IMAGE"),
            table_differences,
        ),
        (
            &[
                "Resources",
                "ExpiryQueue",
                "Properties",
                "VisibilityTimeout",
            ],
            Value::from(30),
            expiry_differences,
        ),
        (
            &[
                "Resources",
                "ExpiryQueue",
                "Properties",
                "RedrivePolicy",
                "maxReceiveCount",
            ],
            Value::from(3),
            expiry_differences,
        ),
        (
            &[
                "Resources",
                "ExpiryDeadLetterQueue",
                "Properties",
                "MessageRetentionPeriod",
            ],
            Value::from(86400),
            expiry_differences,
        ),
        (
            &[
                "Resources",
                "TimeoutCloseFunction",
                "Properties",
                "Events",
                "Expiry",
                "Properties",
                "BatchSize",
            ],
            Value::from(5),
            expiry_differences,
        ),
        (
            &[
                "Resources",
                "EventsQueue",
                "Properties",
                "ContentBasedDeduplication",
            ],
            Value::from(true),
            events_differences,
        ),
        (
            &[
                "Resources",
                "PublishEventsStream",
                "Properties",
                "BatchSize",
            ],
            Value::from(10),
            events_differences,
        ),
        (
            &[
                "Resources",
                "ReconcileFunction",
                "Properties",
                "Events",
                "BillStored",
                "Properties",
                "Events",
            ],
            Value::from("s3:ObjectCreated:Put"),
            notification_differences,
        ),
        (
            &[
                "Resources",
                "BillFetchFunction",
                "Properties",
                "Events",
                "Hourly",
                "Properties",
                "ScheduleExpression",
            ],
            Value::from("cron(5 9-11 * * ? *)"),
            schedule_differences,
        ),
        (
            &[
                "Resources",
                "HttpApi",
                "Properties",
                "Auth",
                "Authorizers",
                "ConsoleStaff",
                "IdentitySource",
            ],
            Value::from("$request.header.X-Token"),
            authorizer_differences,
        ),
        (
            &[
                "Resources",
                "HttpApi",
                "Properties",
                "Auth",
                "Authorizers",
                "ConsoleStaff",
                "JwtConfiguration",
                "issuer",
            ],
            Value::from("https://issuer.example.com"),
            authorizer_differences,
        ),
        (
            &[
                "Resources",
                "ConsoleUserPoolClient",
                "Properties",
                "ExplicitAuthFlows",
            ],
            serde_norway::from_str("[ALLOW_USER_SRP_AUTH, ALLOW_REFRESH_TOKEN_AUTH]").unwrap(),
            authorizer_differences,
        ),
        (
            &[
                "Resources",
                "ConsoleUserPoolClient",
                "Properties",
                "GenerateSecret",
            ],
            Value::from(true),
            authorizer_differences,
        ),
        (
            &[
                "Resources",
                "ConsoleUserPool",
                "Properties",
                "AdminCreateUserConfig",
                "AllowAdminCreateUserOnly",
            ],
            Value::from(false),
            authorizer_differences,
        ),
        (
            &[
                "Resources",
                "ConsoleUserPool",
                "Properties",
                "Policies",
                "PasswordPolicy",
                "MinimumLength",
            ],
            Value::from(8),
            authorizer_differences,
        ),
        (
            &["Resources", "ConsoleViewerGroup", "Properties", "GroupName"],
            Value::from("viewers"),
            authorizer_differences,
        ),
    ];
    for (path, value, check) in changes {
        let mut changed = template();
        *at_mut(&mut changed, path) = value.clone();
        assert!(
            !check(&changed).is_empty(),
            "{path:?} set to {value:?} went unnoticed"
        );
    }
    // Added rules and indexes are seen too.
    let mut changed = template();
    let rules = at_mut(
        &mut changed,
        &[
            "Resources",
            "ReconcileFunction",
            "Properties",
            "Events",
            "BillStored",
            "Properties",
            "Filter",
            "S3Key",
            "Rules",
        ],
    );
    let suffix: Value = serde_norway::from_str("{ Name: suffix, Value: .zip }").unwrap();
    rules.as_sequence_mut().unwrap().push(suffix);
    assert!(!notification_differences(&changed).is_empty());
    let mut changed = template();
    let indexes = at_mut(
        &mut changed,
        &[
            "Resources",
            "OrdersTable",
            "Properties",
            "GlobalSecondaryIndexes",
        ],
    );
    indexes.as_sequence_mut().unwrap().pop();
    assert!(!table_differences(&changed).is_empty());
    // A second audience (another app client) is seen.
    let mut changed = template();
    let audience = at_mut(
        &mut changed,
        &[
            "Resources",
            "HttpApi",
            "Properties",
            "Auth",
            "Authorizers",
            "ConsoleStaff",
            "JwtConfiguration",
            "audience",
        ],
    );
    let other: Value = serde_norway::from_str("!Ref OtherClient").unwrap();
    audience.as_sequence_mut().unwrap().push(other);
    assert!(!authorizer_differences(&changed).is_empty());
}
