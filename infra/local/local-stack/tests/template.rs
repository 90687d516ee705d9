//! `template.yaml` checked against the code, without AWS, Docker or the network: the routes
//! against the API reference and the local stack, the functions against the workspace's
//! binaries and the configuration each one reads, logs and alarms against the functions, the
//! queues and the metrics the code emits, the least-privilege rules, and the `sam local`
//! fixtures (`tests/events/`, `infra/sam/env.json`) against the event types the functions take.
//!
//! CloudFormation's short tags (`!Ref`, `!Sub`, `!GetAtt`, `!If`) are read by `serde_norway` as
//! tagged values; the long forms (`Ref:`, `Fn::Sub:`) are read too.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::http::Method;
use local_stack::gateway::{self, Route};
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Reading the files.

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .canonicalize()
        .unwrap()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(relative: &str) -> Value {
    serde_norway::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn json(relative: &str) -> serde_json::Value {
    serde_json::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// A fixture read as the event type its function takes.
macro_rules! fixture {
    ($relative:expr) => {
        serde_json::from_value(json($relative))
            .unwrap_or_else(|e| panic!("{} is not that event type: {e}", $relative))
    };
}

/// `value[a][b]...`, `Null` where missing.
fn at<'v>(value: &'v Value, path: &[&str]) -> &'v Value {
    path.iter()
        .fold(value, |v, key| v.get(key).unwrap_or(&Value::Null))
}

fn text<'v>(value: &'v Value, path: &[&str]) -> &'v str {
    at(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string: {:?}", at(value, path)))
}

/// An intrinsic function as `(name, argument)`: `!Ref X` and `{Ref: X}` are `("Ref", X)`,
/// `!Sub s` and `{"Fn::Sub": s}` are `("Sub", s)`.
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => {
            let name = tagged.tag.to_string();
            Some((name.trim_start_matches('!').to_owned(), &tagged.value))
        }
        Value::Mapping(map) if map.len() == 1 => {
            let (key, argument) = map.iter().next()?;
            let key = key.as_str()?;
            match key {
                "Ref" => Some(("Ref".to_owned(), argument)),
                _ => key
                    .strip_prefix("Fn::")
                    .map(|name| (name.to_owned(), argument)),
            }
        }
        _ => None,
    }
}

/// `X` of `!Ref X`.
fn reference(value: &Value) -> Option<&str> {
    match intrinsic(value)? {
        (name, argument) if name == "Ref" => argument.as_str(),
        _ => None,
    }
}

/// `X.Attr` of `!GetAtt X.Attr` (or of its list form).
fn get_att(value: &Value) -> Option<String> {
    match intrinsic(value)? {
        (name, Value::String(text)) if name == "GetAtt" => Some(text.clone()),
        (name, Value::Sequence(parts)) if name == "GetAtt" => Some(
            parts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("."),
        ),
        _ => None,
    }
}

/// The text of `!Sub text` or `!Sub [text, {...}]`.
fn sub_text(value: &Value) -> Option<&str> {
    match intrinsic(value)? {
        (name, Value::String(text)) if name == "Sub" => Some(text),
        (name, Value::Sequence(parts)) if name == "Sub" => parts.first()?.as_str(),
        _ => None,
    }
}

/// A scalar (or a list of them) as strings.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        Value::String(text) => vec![text.clone()],
        Value::Number(number) => vec![number.to_string()],
        Value::Bool(flag) => vec![flag.to_string()],
        _ => Vec::new(),
    }
}

struct Template {
    doc: Value,
}

impl Template {
    fn load() -> Template {
        Template {
            doc: yaml("template.yaml"),
        }
    }

    fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        at(&self.doc, &["Resources"])
            .as_mapping()
            .expect("Resources")
            .iter()
            .map(|(id, resource)| (id.as_str().expect("a resource id"), resource))
    }

    fn of_type<'t>(&'t self, kind: &'t str) -> impl Iterator<Item = (&'t str, &'t Value)> + 't {
        self.resources()
            .filter(move |(_, resource)| at(resource, &["Type"]).as_str() == Some(kind))
    }

    fn resource(&self, id: &str) -> &Value {
        let resource = at(&self.doc, &["Resources", id]);
        assert!(!resource.is_null(), "no resource {id}");
        resource
    }

    fn functions(&self) -> Vec<(&str, &Value)> {
        self.of_type("AWS::Serverless::Function").collect()
    }

    /// The cargo-lambda binary a function is built from.
    fn binary<'t>(&self, function: &'t Value) -> &'t str {
        text(function, &["Metadata", "BuildProperties", "Binary"])
    }

    /// A function property, or the `Globals.Function` one when the function has none.
    fn function_property<'t>(&'t self, function: &'t Value, name: &str) -> &'t Value {
        match at(function, &["Properties", name]) {
            Value::Null => at(&self.doc, &["Globals", "Function", name]),
            own => own,
        }
    }

    /// Names of the variables a function's environment declares (Globals and its own).
    fn declared_variables(&self, function: &Value) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for variables in [
            at(
                &self.doc,
                &["Globals", "Function", "Environment", "Variables"],
            ),
            at(function, &["Properties", "Environment", "Variables"]),
        ] {
            if let Some(map) = variables.as_mapping() {
                names.extend(map.keys().filter_map(Value::as_str).map(str::to_owned));
            }
        }
        names
    }

    /// Every IAM statement of a function's `Policies`.
    fn statements<'t>(&self, function: &'t Value) -> Vec<&'t Value> {
        at(function, &["Properties", "Policies"])
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|policy| {
                at(policy, &["Statement"])
                    .as_sequence()
                    .into_iter()
                    .flatten()
            })
            .collect()
    }

    fn alarms(&self) -> Vec<(&str, &Value)> {
        self.of_type("AWS::CloudWatch::Alarm").collect()
    }

    /// `(method, path) -> the authorizer it names` (`Auth.Authorizer`) of every HttpApi event.
    fn route_authorizers(&self) -> BTreeMap<(String, String), Option<String>> {
        let mut authorizers = BTreeMap::new();
        for (_, function) in self.functions() {
            let Some(events) = at(function, &["Properties", "Events"]).as_mapping() else {
                continue;
            };
            for event in events.values() {
                if at(event, &["Type"]).as_str() != Some("HttpApi") {
                    continue;
                }
                let method = text(event, &["Properties", "Method"]).to_ascii_uppercase();
                let path = text(event, &["Properties", "Path"]).to_owned();
                let authorizer = at(event, &["Properties", "Auth", "Authorizer"])
                    .as_str()
                    .map(str::to_owned);
                authorizers.insert((method, path), authorizer);
            }
        }
        authorizers
    }

    /// `(method, path) -> function id` of every HttpApi event.
    fn http_routes(&self) -> BTreeMap<(String, String), String> {
        let mut routes = BTreeMap::new();
        for (id, function) in self.functions() {
            let Some(events) = at(function, &["Properties", "Events"]).as_mapping() else {
                continue;
            };
            for event in events.values() {
                if at(event, &["Type"]).as_str() != Some("HttpApi") {
                    continue;
                }
                assert_eq!(
                    reference(at(event, &["Properties", "ApiId"])),
                    Some("HttpApi"),
                    "{id}: every route is on the one HTTP API"
                );
                let method = text(event, &["Properties", "Method"]).to_ascii_uppercase();
                let path = text(event, &["Properties", "Path"]).to_owned();
                let previous = routes.insert((method.clone(), path.clone()), id.to_owned());
                assert!(previous.is_none(), "{method} {path} is declared twice");
            }
        }
        routes
    }
}

// ---------------------------------------------------------------------------------------------
// The workspace's binaries, from the Cargo manifests.

/// `name = "..."` of a manifest line.
fn name_of(line: &str) -> Option<String> {
    let (key, value) = line.split_once('=')?;
    (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
}

/// The workspace members' directories (`members = [...]` of the root manifest).
fn workspace_members() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let start = manifest.find("members = [").expect("workspace members");
    let list = &manifest[start + "members = [".len()..];
    let list = &list[..list.find(']').expect("end of the members list")];
    list.split(',')
        .map(|member| member.trim().trim_matches('"').to_owned())
        .filter(|member| !member.is_empty())
        .collect()
}

/// Binary name -> member directory, for every binary of the workspace: a package's
/// `src/main.rs` (named after the package) and its `[[bin]]` targets.
fn workspace_binaries() -> BTreeMap<String, String> {
    let mut binaries = BTreeMap::new();
    for member in workspace_members() {
        let manifest = read(&format!("{member}/Cargo.toml"));
        let mut section = String::new();
        let mut package = None;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            match (section.as_str(), name_of(line)) {
                ("[package]", Some(name)) => package = Some(name),
                ("[[bin]]", Some(name)) => {
                    binaries.insert(name, member.clone());
                }
                _ => {}
            }
        }
        let package = package.unwrap_or_else(|| panic!("{member}: no package name"));
        if root().join(&member).join("src/main.rs").is_file() {
            binaries.insert(package, member.clone());
        }
    }
    binaries
}

// ---------------------------------------------------------------------------------------------
// (a) Routes.

/// One request of each route of the local stack's API Gateway emulation.
fn local_routes() -> Vec<Route> {
    vec![
        Route::Pay,
        Route::Query {
            out_trade_no: "T1".into(),
        },
        Route::Notify,
        Route::Refund {
            out_trade_no: "T1".into(),
        },
        Route::RefundStatus {
            out_trade_no: "T1".into(),
            out_request_no: "R1".into(),
        },
        Route::AdminOrders,
        Route::AdminOrder {
            out_trade_no: "T1".into(),
        },
        Route::AdminAnomalies,
        Route::ResolveAnomaly {
            id: "T1%2Fpaid_after_close".into(),
        },
        Route::AdminReport {
            date: "2026-12-07".into(),
        },
    ]
}

/// `/v1/payments/{out_trade_no}` -> `/v1/payments/X1`.
fn concrete(path: &str) -> String {
    path.split('/')
        .enumerate()
        .map(|(i, segment)| {
            if segment.starts_with('{') && segment.ends_with('}') {
                format!("X{i}")
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The merchant API (no authorizer: its requests are signed) is the one `openapi.yaml`
/// documents; the console's routes are behind the JWT authorizer, here and in the local stack.
/// The (method, path) operations of an OpenAPI file.
fn documented_routes(relative: &str) -> BTreeSet<(String, String)> {
    let openapi = yaml(relative);
    let mut documented = BTreeSet::new();
    for (path, operations) in at(&openapi, &["paths"]).as_mapping().expect("paths") {
        for method in operations.as_mapping().expect("operations").keys() {
            let method = method.as_str().expect("a method").to_ascii_uppercase();
            if ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
                .contains(&method.as_str())
            {
                documented.insert((method, path.as_str().expect("a path").to_owned()));
            }
        }
    }
    documented
}

#[test]
fn the_console_page_is_private_in_s3_and_served_with_the_admin_api_on_one_origin() {
    let template = Template::load();
    let bucket = template.resource("ConsoleBucket");
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            at(
                bucket,
                &["Properties", "PublicAccessBlockConfiguration", setting]
            )
            .as_bool(),
            Some(true),
            "{setting}"
        );
    }
    let statements = at(
        template.resource("ConsoleBucketPolicy"),
        &["Properties", "PolicyDocument", "Statement"],
    )
    .as_sequence()
    .expect("statements");
    assert_eq!(statements.len(), 1, "CloudFront's read only");
    assert_eq!(text(&statements[0], &["Action"]), "s3:GetObject");
    assert_eq!(
        text(&statements[0], &["Principal", "Service"]),
        "cloudfront.amazonaws.com"
    );
    let config = at(
        template.resource("ConsoleDistribution"),
        &["Properties", "DistributionConfig"],
    );
    let origins = at(config, &["Origins"]).as_sequence().expect("origins");
    let origin = |id: &str| {
        origins
            .iter()
            .find(|o| text(o, &["Id"]) == id)
            .unwrap_or_else(|| panic!("no origin {id}"))
    };
    assert_eq!(
        get_att(at(origin("console-page"), &["DomainName"])).as_deref(),
        Some("ConsoleBucket.RegionalDomainName")
    );
    assert!(
        sub_text(at(origin("admin-api"), &["DomainName"]))
            .is_some_and(|domain| domain.starts_with("${HttpApi}.execute-api.")),
        "the API is the other origin"
    );
    assert_eq!(
        text(config, &["DefaultCacheBehavior", "TargetOriginId"]),
        "console-page"
    );
    let behaviors = at(config, &["CacheBehaviors"])
        .as_sequence()
        .expect("behaviors");
    assert_eq!(behaviors.len(), 1);
    assert_eq!(text(&behaviors[0], &["PathPattern"]), "/admin/*");
    assert_eq!(text(&behaviors[0], &["TargetOriginId"]), "admin-api");
    assert!(
        strings(at(&behaviors[0], &["AllowedMethods"])).contains(&"POST".to_owned()),
        "resolving is a POST"
    );
    // Every staff route is under /admin/, so CloudFront sends it to the API.
    for ((_, path), authorizer) in template.route_authorizers() {
        if authorizer.is_some() {
            assert!(path.starts_with("/admin/"), "{path}");
        }
    }
}

#[test]
fn the_routes_are_those_of_the_api_reference_and_the_local_stack() {
    let template = Template::load();
    let routes = template.http_routes();
    let declared: BTreeSet<(String, String)> = routes.keys().cloned().collect();
    let authorizers = template.route_authorizers();
    let merchant: BTreeSet<(String, String)> = authorizers
        .iter()
        .filter(|(_, authorizer)| authorizer.is_none())
        .map(|(route, _)| route.clone())
        .collect();

    let staff: BTreeSet<(String, String)> = declared.difference(&merchant).cloned().collect();
    assert_eq!(
        merchant,
        documented_routes("infra/api/openapi.yaml"),
        "template.yaml's routes without an authorizer vs infra/api/openapi.yaml"
    );
    assert_eq!(
        staff,
        documented_routes("infra/api/admin-openapi.yaml"),
        "template.yaml's routes behind the JWT authorizer vs infra/api/admin-openapi.yaml"
    );
    let jwt_authorizers = at(
        template.resource("HttpApi"),
        &["Properties", "Auth", "Authorizers"],
    );
    for ((method, path), authorizer) in &authorizers {
        if let Some(name) = authorizer {
            assert!(
                at(jwt_authorizers, &[name.as_str(), "JwtConfiguration"]).is_mapping(),
                "{method} {path}: {name} is not a JWT authorizer of HttpApi"
            );
        }
    }

    let local: BTreeSet<(String, String)> = local_routes()
        .iter()
        .map(|route| {
            let (method, path) = route.key().split_once(' ').expect("METHOD /path");
            (method.to_owned(), path.to_owned())
        })
        .collect();
    assert_eq!(declared, local, "template.yaml vs the local stack's routes");

    for ((method, path), function_id) in &routes {
        let binary = template.binary(template.resource(function_id));
        let request_path = concrete(path);
        let route = gateway::route(
            &Method::from_bytes(method.as_bytes()).unwrap(),
            &request_path,
        )
        .unwrap_or_else(|| panic!("the local stack has no route for {method} {request_path}"));
        assert_eq!(route.key(), format!("{method} {path}"));
        assert_eq!(
            route.function().name(),
            binary,
            "{method} {path}: {function_id} builds `{binary}`, the local stack serves it with another function"
        );
        assert_eq!(
            route.needs_staff_token(),
            authorizers[&(method.clone(), path.clone())].is_some(),
            "{method} {path}: behind the JWT authorizer in one and not the other"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Build metadata.

#[test]
fn every_function_is_built_by_cargo_lambda_from_a_binary_of_the_workspace() {
    let template = Template::load();
    let binaries = workspace_binaries();
    let mut deployed = BTreeSet::new();
    for (id, function) in template.functions() {
        assert_eq!(
            text(function, &["Metadata", "BuildMethod"]),
            "rust-cargolambda",
            "{id}"
        );
        assert_eq!(
            template.function_property(function, "Runtime").as_str(),
            Some("provided.al2023"),
            "{id}: Runtime"
        );
        assert_eq!(
            strings(template.function_property(function, "Architectures")),
            vec!["arm64"],
            "{id}: Architectures"
        );
        assert_eq!(
            template.function_property(function, "Handler").as_str(),
            Some("bootstrap"),
            "{id}: Handler"
        );
        // cargo lambda builds in the directory CodeUri names: the workspace root.
        let code_uri = template
            .function_property(function, "CodeUri")
            .as_str()
            .unwrap_or_else(|| panic!("{id}: CodeUri"));
        let manifest = std::fs::read_to_string(root().join(code_uri).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{id}: CodeUri {code_uri} has no Cargo.toml: {e}"));
        assert!(manifest.contains("[workspace]"), "{id}: CodeUri {code_uri}");
        let binary = template.binary(function);
        assert!(
            binaries.contains_key(binary),
            "{id}: Binary `{binary}` is not a binary of the workspace ({:?})",
            binaries.keys()
        );
        assert!(
            deployed.insert(binary.to_owned()),
            "`{binary}` deployed twice"
        );
    }
    let lambdas: BTreeSet<String> = binaries
        .iter()
        .filter(|(_, member)| member.starts_with("functions/"))
        .map(|(binary, _)| binary.clone())
        .collect();
    assert_eq!(deployed, lambdas, "every function crate, deployed once");
    assert_eq!(
        at(&template.doc, &["Globals", "Function", "Tracing"]).as_str(),
        Some("Active"),
        "X-Ray tracing"
    );
}

// ---------------------------------------------------------------------------------------------
// (c) Logs and alarms.

fn is_errors_alarm_of(alarm: &Value, function_id: &str) -> bool {
    let properties = at(alarm, &["Properties"]);
    at(properties, &["Namespace"]).as_str() == Some("AWS/Lambda")
        && at(properties, &["MetricName"]).as_str() == Some("Errors")
        && at(properties, &["Dimensions"])
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|d| {
                at(d, &["Name"]).as_str() == Some("FunctionName")
                    && reference(at(d, &["Value"])) == Some(function_id)
            })
}

/// Alarms notify the optional topic: `!If [HasAlarmEmail, [!Ref AlarmTopic], !Ref AWS::NoValue]`.
fn notifies_the_alarm_topic(alarm: &Value) -> bool {
    match intrinsic(at(alarm, &["Properties", "AlarmActions"])) {
        Some((name, Value::Sequence(branches))) if name == "If" => {
            branches.first().and_then(Value::as_str) == Some("HasAlarmEmail")
                && branches
                    .get(1)
                    .and_then(Value::as_sequence)
                    .and_then(|topics| topics.first())
                    .and_then(reference)
                    == Some("AlarmTopic")
        }
        _ => false,
    }
}

#[test]
fn every_function_has_a_log_group_with_retention_and_an_errors_alarm() {
    let template = Template::load();
    let log_groups: Vec<&Value> = template
        .of_type("AWS::Logs::LogGroup")
        .map(|(_, group)| group)
        .collect();
    for (_, group) in template.of_type("AWS::Logs::LogGroup") {
        assert_eq!(
            reference(at(group, &["Properties", "RetentionInDays"])),
            Some("LogRetentionDays"),
            "every log group expires"
        );
    }
    let alarms = template.alarms();
    for (id, _) in template.functions() {
        let name = format!("/aws/lambda/${{{id}}}");
        assert!(
            log_groups
                .iter()
                .any(|group| sub_text(at(group, &["Properties", "LogGroupName"]))
                    == Some(name.as_str())),
            "{id}: no log group named !Sub \"{name}\" (the group Lambda writes to)"
        );
        assert!(
            alarms
                .iter()
                .any(|(_, alarm)| is_errors_alarm_of(alarm, id)),
            "{id}: no alarm on its Lambda Errors"
        );
    }
    for (id, alarm) in &alarms {
        assert!(
            notifies_the_alarm_topic(alarm),
            "{id}: AlarmActions must be the optional alarm topic"
        );
    }
}

/// Ids of the SQS queues that receive what failed elsewhere.
fn dead_letter_queues(template: &Template) -> BTreeSet<String> {
    fn walk(value: &Value, under: &str, found: &mut BTreeSet<String>) {
        if let Some(target) = get_att(value)
            && let Some(queue) = target.strip_suffix(".Arn")
            && [
                "deadLetterTargetArn",
                "OnFailure",
                "DeadLetterQueue",
                "DeadLetterConfig",
            ]
            .contains(&under)
        {
            found.insert(queue.to_owned());
        }
        match value {
            Value::Mapping(map) => {
                for (key, child) in map {
                    let key = key.as_str().unwrap_or_default();
                    let under = if ["Destination", "TargetArn", "Arn"].contains(&key) {
                        under
                    } else {
                        key
                    };
                    walk(child, under, found);
                }
            }
            Value::Sequence(items) => items.iter().for_each(|item| walk(item, under, found)),
            Value::Tagged(tagged) => walk(&tagged.value, under, found),
            _ => {}
        }
    }
    let mut found = BTreeSet::new();
    for (_, resource) in template.resources() {
        walk(resource, "", &mut found);
    }
    let queues: BTreeSet<&str> = template
        .of_type("AWS::SQS::Queue")
        .map(|(id, _)| id)
        .collect();
    found.retain(|queue| queues.contains(queue.as_str()));
    found
}

#[test]
fn every_dead_letter_queue_has_a_depth_alarm() {
    let template = Template::load();
    let queues = dead_letter_queues(&template);
    assert!(
        queues.contains("ExpiryDeadLetterQueue") && queues.contains("EventsFailureQueue"),
        "{queues:?}"
    );
    for queue in queues {
        let watched = template.alarms().iter().any(|(_, alarm)| {
            let p = at(alarm, &["Properties"]);
            at(p, &["Namespace"]).as_str() == Some("AWS/SQS")
                && at(p, &["MetricName"]).as_str() == Some("ApproximateNumberOfMessagesVisible")
                && at(p, &["Dimensions"])
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|d| {
                        at(d, &["Name"]).as_str() == Some("QueueName")
                            && get_att(at(d, &["Value"])) == Some(format!("{queue}.QueueName"))
                    })
        });
        assert!(watched, "{queue}: no alarm on its depth");
    }
}

/// The Rust sources of the functions and shared crates, concatenated.
fn workspace_sources() -> String {
    fn collect(dir: &Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    let mut out = String::new();
    for member in workspace_members()
        .iter()
        .filter(|m| m.starts_with("functions/") || m.starts_with("shared/"))
    {
        collect(&root().join(member).join("src"), &mut out);
    }
    out
}

/// `SELECT SUM(name) FROM SCHEMA("AlipayF2F", ...)` -> `name`.
fn insights_metric(expression: &str) -> Option<&str> {
    let rest = expression.strip_prefix("SELECT SUM(")?;
    let (metric, rest) = rest.split_once(')')?;
    rest.trim_start()
        .starts_with(&format!(
            "FROM SCHEMA(\"{}\"",
            f2f_runtime::telemetry::NAMESPACE
        ))
        .then_some(metric)
}

#[test]
fn alarms_watch_metrics_the_code_emits_and_every_anomaly_kind() {
    let template = Template::load();
    let sources = workspace_sources();
    let functions: BTreeSet<&str> = [
        f2f_runtime::Function::Pay,
        f2f_runtime::Function::Query,
        f2f_runtime::Function::TimeoutClose,
        f2f_runtime::Function::Notify,
        f2f_runtime::Function::BillFetch,
        f2f_runtime::Function::Reconcile,
    ]
    .iter()
    .map(|f| f.name())
    .chain(["publish-events"])
    .collect();
    let mut anomaly_metrics = BTreeSet::new();
    let mut custom = 0;
    for (id, alarm) in template.alarms() {
        let p = at(alarm, &["Properties"]);
        if at(p, &["Namespace"]).as_str() == Some(f2f_runtime::telemetry::NAMESPACE) {
            custom += 1;
            let metric = text(p, &["MetricName"]);
            assert!(
                sources.contains(&format!("\"{metric}\"")),
                "{id}: no code emits the metric {metric}"
            );
            let dimensions = at(p, &["Dimensions"]).as_sequence().expect("Dimensions");
            assert_eq!(dimensions.len(), 1, "{id}: EMF metrics carry Function only");
            assert_eq!(text(&dimensions[0], &["Name"]), "Function", "{id}");
            let function = text(&dimensions[0], &["Value"]);
            assert!(functions.contains(function), "{id}: no function {function}");
        }
        for query in at(p, &["Metrics"]).as_sequence().into_iter().flatten() {
            let Some(expression) = at(query, &["Expression"]).as_str() else {
                continue;
            };
            if let Some(metric) = insights_metric(expression) {
                assert!(
                    sources.contains(&format!("\"{metric}\""))
                        || domain::anomaly::AnomalyKind::ALL
                            .iter()
                            .any(|kind| kind.metric() == metric),
                    "{id}: no code emits the metric {metric}"
                );
                anomaly_metrics.extend(metric.starts_with("anomaly_").then(|| metric.to_owned()));
            }
        }
    }
    assert!(custom >= 4, "the EMF alarms are there");
    let kinds: BTreeSet<String> = domain::anomaly::AnomalyKind::ALL
        .iter()
        .map(|kind| kind.metric().to_owned())
        .collect();
    assert_eq!(anomaly_metrics, kinds, "one open-anomaly alarm per kind");
    for metric in ["notification_signature_failures", "reconcile_discrepancies"] {
        assert!(
            template
                .alarms()
                .iter()
                .any(
                    |(_, alarm)| at(alarm, &["Properties", "MetricName"]).as_str() == Some(metric)
                ),
            "no alarm on {metric}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The API stage, and least privilege.

#[test]
fn the_api_stage_is_throttled_and_logged_and_notify_has_its_own_limit() {
    let template = Template::load();
    let api = at(template.resource("HttpApi"), &["Properties"]);
    assert_eq!(text(api, &["StageName"]), "$default");
    for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        assert!(
            reference(at(api, &["DefaultRouteSettings", limit])).is_some(),
            "DefaultRouteSettings.{limit}"
        );
    }
    let logs = get_att(at(api, &["AccessLogSettings", "DestinationArn"])).expect("access logs");
    let group = template.resource(logs.strip_suffix(".Arn").expect("a log group's Arn"));
    assert_eq!(text(group, &["Type"]), "AWS::Logs::LogGroup");
    assert!(!at(group, &["Properties", "RetentionInDays"]).is_null());
    assert!(text(api, &["AccessLogSettings", "Format"]).contains("$context.requestId"));

    let notify = template
        .functions()
        .into_iter()
        .find(|(_, f)| template.binary(f) == "notify")
        .expect("the notify function");
    let events = at(notify.1, &["Properties", "Events"])
        .as_mapping()
        .unwrap();
    let route = events
        .values()
        .find(|e| at(e, &["Properties", "Path"]).as_str() == Some("/alipay/notify"))
        .expect("the notify route");
    let parameters = at(&template.doc, &["Parameters"]);
    for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        let own = reference(at(route, &["Properties", "RouteSettings", limit]))
            .unwrap_or_else(|| panic!("the notify route has no {limit} of its own"));
        let default = reference(at(api, &["DefaultRouteSettings", limit])).unwrap();
        assert_ne!(own, default, "{limit}: notify's own parameter");
        let value = |name: &str| at(parameters, &[name, "Default"]).as_f64().unwrap();
        assert!(
            value(own) <= value(default),
            "{limit}: notify at most the default"
        );
    }
}

#[test]
fn functions_get_only_the_secrets_and_bucket_access_they_use() {
    let template = Template::load();
    for (id, function) in template.functions() {
        let binary = template.binary(function);
        let statements = template.statements(function);
        let actions: Vec<String> = statements
            .iter()
            .flat_map(|s| strings(at(s, &["Action"])))
            .collect();
        // notify verifies with Alipay's public key and sends no Alipay request; reconcile
        // calls no Alipay API; publish-events only forwards the stream; admin reads and writes
        // the table and hands refunds to the expiry queue's re-check.
        if ["notify", "reconcile", "publish-events", "admin"].contains(&binary) {
            assert!(
                !actions.iter().any(|a| a.starts_with("secretsmanager:")),
                "{id}: reads no secret"
            );
            assert!(
                !template
                    .declared_variables(function)
                    .iter()
                    .any(|v| v.ends_with("_SECRET_ARN")),
                "{id}: is given no secret"
            );
        }
        for action in &actions {
            assert!(
                !(action.starts_with("s3:")
                    && (action.contains('*')
                        || action.contains("Delete")
                        || action.contains("Acl")
                        || action.contains("Lifecycle")
                        || action.contains("Policy"))),
                "{id}: {action}"
            );
            assert!(!action.ends_with(":*") && action != "*", "{id}: {action}");
        }
        // A function triggered by objects under a prefix must not write there.
        let events = at(function, &["Properties", "Events"]);
        for event in events.as_mapping().into_iter().flat_map(|m| m.values()) {
            if at(event, &["Type"]).as_str() != Some("S3") {
                continue;
            }
            let rules = at(event, &["Properties", "Filter", "S3Key", "Rules"])
                .as_sequence()
                .expect("an S3 trigger filtered by prefix");
            let prefix = rules
                .iter()
                .find(|r| at(r, &["Name"]).as_str() == Some("prefix"))
                .map(|r| text(r, &["Value"]))
                .expect("a prefix rule");
            for statement in &statements {
                if !strings(at(statement, &["Action"]))
                    .iter()
                    .any(|a| a == "s3:PutObject")
                {
                    continue;
                }
                // A plain list of resources, not `!Sub [text, {...}]` (which serde_norway also
                // shows as a sequence).
                let resources: Vec<&Value> = match at(statement, &["Resource"]) {
                    Value::Sequence(items) => items.iter().collect(),
                    one => vec![one],
                };
                for resource in resources {
                    let arn = sub_text(resource).expect("S3 resources as !Sub");
                    assert!(
                        !arn.ends_with(&format!("/{prefix}*")) && !arn.ends_with("}/*"),
                        "{id} writes {arn}, under {prefix} which triggers it"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Parameters.

/// CloudFormation matches `AllowedPattern` against the whole value.
fn allowed(pattern: &str, value: &str) -> bool {
    regex_lite::Regex::new(&format!("^(?:{pattern})$"))
        .unwrap()
        .is_match(value)
}

#[test]
fn the_gateway_url_must_be_https_and_every_default_is_allowed() {
    let template = Template::load();
    let pattern = text(
        &template.doc,
        &["Parameters", "AlipayGatewayUrl", "AllowedPattern"],
    );
    for refused in [
        "http://openapi.alipay.com/gateway.do",
        "http://127.0.0.1:8601/gateway.do",
        "HTTP://openapi.alipay.com/gateway.do",
        "https://",
        "https:// openapi.alipay.com/gateway.do",
        "ftp://openapi.alipay.com/gateway.do",
    ] {
        assert!(!allowed(pattern, refused), "{refused}");
    }
    for accepted in [
        "https://openapi.alipay.com/gateway.do",
        "https://openapi-sandbox.dl.alipaydev.com/gateway.do",
    ] {
        assert!(allowed(pattern, accepted), "{accepted}");
    }

    // A stack deploys with every default.
    let parameters = at(&template.doc, &["Parameters"]).as_mapping().unwrap();
    for (name, parameter) in parameters {
        let name = name.as_str().unwrap();
        let Some(default) = strings(at(parameter, &["Default"])).into_iter().next() else {
            continue;
        };
        if let Some(pattern) = at(parameter, &["AllowedPattern"]).as_str() {
            assert!(allowed(pattern, &default), "{name}: default {default:?}");
        }
        let values = strings(at(parameter, &["AllowedValues"]));
        assert!(
            values.is_empty() || values.contains(&default),
            "{name}: {default}"
        );
        let number = || default.parse::<f64>().unwrap();
        if let Some(min) = at(parameter, &["MinValue"]).as_f64() {
            assert!(number() >= min, "{name}");
        }
        if let Some(max) = at(parameter, &["MaxValue"]).as_f64() {
            assert!(number() <= max, "{name}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `sam local`: the environment file and the event fixtures.

/// The variables `sam local` gives a function from `infra/sam/env.json`: `Parameters` for
/// all, then the function's own (by logical id).
fn sam_local_env(env: &serde_json::Value, function_id: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for scope in ["Parameters", function_id] {
        if let Some(map) = env.get(scope).and_then(serde_json::Value::as_object) {
            for (name, value) in map {
                let value = value
                    .as_str()
                    .unwrap_or_else(|| panic!("{scope}.{name}: values are strings"));
                vars.insert(name.clone(), value.to_owned());
            }
        }
    }
    vars
}

#[test]
fn the_sam_local_env_file_gives_each_function_a_configuration_it_accepts() {
    let template = Template::load();
    let env = json("infra/sam/env.json");
    let ids: BTreeSet<&str> = template.functions().iter().map(|(id, _)| *id).collect();
    for scope in env.as_object().unwrap().keys() {
        assert!(
            scope == "Parameters" || ids.contains(scope.as_str()),
            "env.json: no function {scope}"
        );
    }
    for (id, function) in template.functions() {
        let declared = template.declared_variables(function);
        // sam local sets only the variables the template declares for the function.
        let own: BTreeSet<String> = env
            .get(id)
            .and_then(serde_json::Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let undeclared: Vec<&String> = own.difference(&declared).collect();
        assert!(
            undeclared.is_empty(),
            "{id}: {undeclared:?} are not in the template"
        );
        let vars = sam_local_env(&env, id);
        let missing: Vec<&String> = declared.iter().filter(|v| !vars.contains_key(*v)).collect();
        assert!(missing.is_empty(), "{id}: no placeholder for {missing:?}");
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(name, _)| declared.contains(name))
            .collect();
        let lookup = |name: &str| vars.get(name).cloned();
        let binary = template.binary(function);
        let loaded = match binary {
            "notify" => f2f_runtime::NotifyConfig::from_lookup(&lookup).map(|_| ()),
            "admin" => f2f_runtime::AdminConfig::from_lookup(&lookup).map(|_| ()),
            "reconcile" => f2f_runtime::ReconcileConfig::from_lookup(&lookup).map(|_| ()),
            "publish-events" => {
                assert!(lookup("EVENTS_QUEUE_URL").is_some_and(|url| url.ends_with(".fifo")));
                Ok(())
            }
            other => {
                let function = [
                    f2f_runtime::Function::Pay,
                    f2f_runtime::Function::Query,
                    f2f_runtime::Function::TimeoutClose,
                    f2f_runtime::Function::BillFetch,
                ]
                .into_iter()
                .find(|f| f.name() == other)
                .unwrap_or_else(|| panic!("{id}: how does `{other}` read its configuration?"));
                f2f_runtime::Config::from_lookup(function, &lookup).map(|_| ())
            }
        };
        if let Err(error) = loaded {
            panic!("{id} refuses the env.json placeholders: {error}");
        }
    }
}

/// A payload v2 fixture as the function receives it, checked against the template's route.
fn http_fixture(relative: &str) -> (ApiGatewayV2httpRequest, lambda_http::Request) {
    let template = Template::load();
    let event: ApiGatewayV2httpRequest = fixture!(relative);
    let raw = json(relative);
    let request = gateway::lambda_request(&raw).unwrap_or_else(|e| panic!("{relative}: {e}"));
    let route_key = event.route_key.clone().expect("routeKey");
    let (method, path) = route_key.split_once(' ').unwrap();
    assert!(
        template
            .http_routes()
            .contains_key(&(method.to_owned(), path.to_owned())),
        "{relative}: {route_key} is not a route of the template"
    );
    assert_eq!(event.request_context.http.method.as_str(), method);
    assert_eq!(event.request_context.stage.as_deref(), Some("$default"));
    let raw_path = event.raw_path.clone().expect("rawPath");
    let matched = gateway::route(&event.request_context.http.method, &raw_path).expect("a route");
    assert_eq!(matched.key(), route_key, "{relative}");
    assert_eq!(f2f_runtime::http::raw_path(&request), raw_path);
    (event, request)
}

#[test]
fn the_create_fixture_is_a_signed_payment_request() {
    let (_, request) = http_fixture("tests/events/api-create-payment.json");
    let body = request.body().as_ref();
    let payment = pay::validation::parse(body).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        payment.new_order(chrono::Utc::now()).out_trade_no.as_str(),
        "T20240305_0001"
    );
    // Signed with the documentation key `example` / `example-secret` (regenerate with
    // `payments-cli --key-id example --secret-file <file holding example-secret> sign ...`).
    let header = |name: &str| {
        f2f_runtime::http::header(&request, name)
            .unwrap()
            .to_owned()
    };
    let to_sign = domain::auth::RequestToSign {
        method: "POST",
        path: f2f_runtime::http::raw_path(&request),
        raw_query: f2f_runtime::http::raw_query(&request),
        body,
    };
    let expected = domain::auth::sign(
        &secrecy::SecretString::from("example-secret"),
        &domain::auth::string_to_sign(&to_sign, &header("x-timestamp"), &header("x-nonce"))
            .unwrap(),
    );
    assert_eq!(header("x-key-id"), "example");
    assert_eq!(header("x-signature"), expected);
}

#[test]
fn the_notify_fixture_verifies_with_the_env_file_s_alipay_key() {
    let (event, request) = http_fixture("tests/events/api-alipay-notify.json");
    assert!(
        event.is_base64_encoded,
        "API Gateway passes a form body in Base64"
    );
    let delivery = notify::http::delivery_of(&request, chrono::Utc::now());
    assert_eq!(
        delivery.claimed_out_trade_no().map(|n| n.to_string()),
        Some("T20240305_0001".to_owned())
    );
    let env = json("infra/sam/env.json");
    let vars = sam_local_env(&env, "NotifyFunction");
    let key = alipay::PublicKey::parse(&vars["ALIPAY_PUBLIC_KEY"]).unwrap();
    let verified = alipay::notify::verify(&delivery.body, &alipay::AlipayVerifier::PublicKey(key))
        .unwrap_or_else(|e| panic!("{e}"));
    let trade = verified.trade().unwrap();
    assert_eq!(trade.app_id, vars["ALIPAY_APP_ID"]);
    assert_eq!(
        trade.seller_id.as_deref(),
        Some(vars["ALIPAY_SELLER_ID"].as_str())
    );
    assert!(trade.trade_status.is_paid());
}

#[test]
fn the_sqs_fixture_is_a_batch_of_expiry_messages() {
    let event: SqsEvent = fixture!("tests/events/sqs-expiry-batch.json");
    assert!(!event.records.is_empty());
    let mut claims = 0;
    for record in &event.records {
        assert!(record.message_id.is_some());
        assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
        let message =
            aws_adapters::sqs::expiry::ExpiryMessage::parse(record.body.as_deref().unwrap())
                .unwrap_or_else(|e| panic!("{e}"));
        claims += usize::from(message.claim.is_some());
    }
    assert_eq!(
        claims, 1,
        "one as the pay function sends it, one as a relay"
    );
}

/// The subset of event pattern matching the template's stream filters use: lists of values or
/// of `{"prefix": ...}`, nested objects.
fn matches_pattern(pattern: &serde_json::Value, event: &serde_json::Value) -> bool {
    let pattern = pattern.as_object().expect("a pattern is an object");
    pattern.iter().all(|(key, wanted)| {
        let actual = event.get(key).unwrap_or(&serde_json::Value::Null);
        match wanted {
            serde_json::Value::Array(options) => options.iter().any(|option| match option {
                serde_json::Value::String(value) => actual.as_str() == Some(value),
                serde_json::Value::Object(rule) => match rule.get("prefix") {
                    Some(prefix) => actual
                        .as_str()
                        .zip(prefix.as_str())
                        .is_some_and(|(a, p)| a.starts_with(p)),
                    None => panic!("unsupported filter rule {rule:?}"),
                },
                other => panic!("unsupported filter value {other}"),
            }),
            serde_json::Value::Object(_) => matches_pattern(wanted, actual),
            other => panic!("unsupported filter {other}"),
        }
    })
}

#[test]
fn the_stream_fixture_passes_the_filter_and_becomes_a_business_event() {
    let template = Template::load();
    let raw = json("tests/events/dynamodb-stream-order-paid.json");
    let event: StreamEvent = fixture!("tests/events/dynamodb-stream-order-paid.json");
    let filters: Vec<serde_json::Value> = at(
        template.resource("PublishEventsStream"),
        &["Properties", "FilterCriteria", "Filters"],
    )
    .as_sequence()
    .unwrap()
    .iter()
    .map(|f| serde_json::from_str(text(f, &["Pattern"])).unwrap())
    .collect();
    assert!(!event.records.is_empty());
    for (record, raw) in event.records.iter().zip(raw["Records"].as_array().unwrap()) {
        assert!(
            filters.iter().any(|f| matches_pattern(f, raw)),
            "the event source mapping would drop {}",
            publish_events::describe_keys(record)
        );
        let published = publish_events::business_event(record)
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("a business event");
        assert_eq!(
            serde_json::to_value(&published).unwrap()["type"],
            "order.paid"
        );
    }
}

#[test]
fn the_s3_fixture_names_a_stored_bill_under_the_trigger_prefix() {
    let template = Template::load();
    let event: S3Event = fixture!("tests/events/s3-bill-stored.json");
    let reconcile = template
        .functions()
        .into_iter()
        .find(|(_, f)| template.binary(f) == "reconcile")
        .unwrap()
        .1;
    let trigger = at(
        reconcile,
        &["Properties", "Events", "BillStored", "Properties"],
    );
    let prefix = text(
        &at(trigger, &["Filter", "S3Key", "Rules"])
            .as_sequence()
            .unwrap()[0],
        &["Value"],
    );
    assert!(!event.records.is_empty());
    for record in &event.records {
        assert!(
            record
                .event_name
                .as_deref()
                .unwrap()
                .starts_with("ObjectCreated:")
        );
        let key = record.s3.object.key.as_deref().unwrap();
        assert!(key.starts_with(prefix), "{key}");
        assert!(
            domain::bills::BillKey::parse(key).is_some(),
            "{key} is not a bill"
        );
        let bucket = record.s3.bucket.name.as_deref().unwrap();
        assert!(
            bucket.starts_with("alipay-f2f-bills-"),
            "the default bucket name"
        );
    }
}

#[test]
fn the_schedule_fixture_makes_bill_fetch_take_yesterday() {
    let event: EventBridgeEvent<serde_json::Value> =
        fixture!("tests/events/schedule-bill-fetch.json");
    assert_eq!(event.source, "aws.scheduler");
    assert_eq!(event.detail_type, "Scheduled Event");
    let raw = json("tests/events/schedule-bill-fetch.json");
    let (app_key, _) = alipay::PrivateKey::generate().unwrap();
    let verifier = alipay::AlipayVerifier::PublicKey(app_key.public_key().unwrap());
    let alipay = alipay::client::AlipayClient::new(alipay::client::ClientConfig::new(
        "https://openapi.alipay.com/gateway.do",
        "2021000000000000",
        app_key,
        verifier,
    ))
    .unwrap();
    let s3 = aws_adapters::aws_sdk_s3::Client::from_conf(
        aws_adapters::aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(aws_adapters::aws_sdk_s3::config::Region::new("us-east-1"))
            .build(),
    );
    let fetcher = bill_fetch::BillFetcher {
        alipay,
        objects: aws_adapters::S3Objects::new(s3, "bills"),
        clock: f2f_runtime::SystemClock,
        schedule: bill_fetch::Schedule { deadline_hour: 12 },
    };
    let before = domain::beijing_day(chrono::Utc::now()) - chrono::Duration::days(1);
    let day = fetcher.day_of(&raw).unwrap();
    let after = domain::beijing_day(chrono::Utc::now()) - chrono::Duration::days(1);
    assert!(day == before || day == after, "{day}");
}
