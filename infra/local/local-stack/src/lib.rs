//! The whole local stack on 127.0.0.1, for `make run`:
//!
//! - the AWS emulator, `moto_server` from the project venv (`.local/venv`, installed by
//!   `infra/scripts/test-deps.sh moto`), started as a child process by `test-support`'s
//!   launcher, with the orders table and the expiry queue created in it;
//! - the Alipay sandbox simulator, in this process, its keys and `sandbox.json` in
//!   `<local dir>/sandbox` (kept between runs);
//! - the merchant API: the real `pay`, `query` and `notify` handlers, built by the same
//!   configuration and wiring code as in Lambda, on the routes of `template.yaml`, behind a
//!   small API Gateway emulation ([`gateway`]);
//! - the real `timeout-close` handler on the expiry queue, fed batches as Lambda's SQS event
//!   source would feed it ([`expiry`]);
//! - the merchant API key `local` ([`keys`]);
//! - the business events: the table's stream polled into the real publisher, which sends
//!   them to a FIFO queue in moto and logs each one ([`streams`]);
//! - the operator console: the real `admin` handler on the `/admin/...` routes behind API
//!   Gateway's JWT authorizer ([`authorizer`]), the console's user pool in moto with a local
//!   user per group ([`cognito`]), the page at `/console/` and Cognito's endpoint for it at
//!   `/cognito-idp/` ([`console`]).
//!
//! Moto and the sandbox keep their state in memory: every run starts with no orders.
//!
//! The queues, the table, the bucket's notification, the schedule and the user pool are created
//! or run from constants ([`expiry`], [`streams`], [`bills`], [`cognito`],
//! `aws_adapters::dynamo::schema`) that `tests/drift.rs` compares with `template.yaml`. Once
//! everything answers, [`run`] writes `<local dir>/stack.json` ([`LocalStack::description`]) and
//! removes it when the stack stops (SIGINT or SIGTERM; moto, a child process, is killed and
//! reaped with it).

pub mod authorizer;
pub mod bills;
pub mod cognito;
pub mod console;
pub mod expiry;
pub mod gateway;
pub mod keys;
pub mod streams;

use alipay_sandbox::RunningSandbox;
use aws_adapters::{aws_sdk_dynamodb, aws_sdk_sqs};
use axum::extract::{Request as AxumRequest, State};
use axum::http::StatusCode;
use f2f_runtime::config::{Config, Function};
use f2f_runtime::{SystemClock, wiring};
use gateway::HttpRequest;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use test_support::MotoServer;
use test_support::emulator_proxy::{EmulatorProxy, FaultPlan};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use keys::MerchantKey;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub const DEFAULT_PORT: u16 = 8600;
pub const DEFAULT_SANDBOX_PORT: u16 = 8601;
pub const DEFAULT_MOTO_PORT: u16 = 8602;
pub const ORDERS_TABLE: &str = "orders";
pub const EXPIRY_QUEUE: &str = "order-expiry";
pub const EXPIRY_DEAD_LETTER_QUEUE: &str = "order-expiry-dlq";
/// Where the sandbox keeps its keys and `sandbox.json`, under the local directory.
pub const SANDBOX_DIR: &str = "sandbox";
/// The running stack's description ([`LocalStack::description`]), under the local directory.
pub const STACK_FILE: &str = "stack.json";
/// How long a stopping stack may take to let its requests and pollers finish before moto is
/// killed anyway.
pub const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The optional function variables (timing knobs) that may be set in the environment of
/// `make run`; the others are the stack's own.
pub const KNOBS: &[&str] = &[
    "ALIPAY_CONNECT_TIMEOUT_MS",
    "ALIPAY_REQUEST_TIMEOUT_MS",
    "PRECREATE_ATTEMPTS",
    "BARCODE_POLL_INTERVAL_MS",
    "BARCODE_POLL_DURATION_MS",
    "CANCEL_ATTEMPTS",
    "CLAIM_LEASE_SECONDS",
    "SYNC_AFTER_SECONDS",
    "MAX_BODY_BYTES",
];

#[derive(Debug, Clone)]
pub struct Options {
    /// The merchant API's port; 0 picks a free one.
    pub port: u16,
    /// The sandbox's port; 0 picks a free one.
    pub sandbox_port: u16,
    /// Moto's port; 0 picks a free one.
    pub moto_port: u16,
    /// The sandbox keys and the merchant key files live here (`.local`).
    pub local_dir: PathBuf,
    /// Function variables from [`KNOBS`].
    pub knobs: BTreeMap<String, String>,
    /// With a plan, the functions reach moto through an [`EmulatorProxy`] injecting these
    /// faults ([`LocalStack::emulator_proxy`]); the stack's own pollers and setup do not.
    pub emulator_faults: Option<FaultPlan>,
    /// The console's static files (`infra/console`), served at `/console/`.
    pub console_dir: PathBuf,
}

impl Options {
    /// Every service on a free port, no knobs, keys under `local_dir` (tests, benchmarks).
    pub fn on_free_ports(local_dir: &Path) -> Options {
        Options {
            port: 0,
            sandbox_port: 0,
            moto_port: 0,
            local_dir: local_dir.to_owned(),
            knobs: BTreeMap::new(),
            emulator_faults: None,
            console_dir: console::default_dir(),
        }
    }

    /// The [`KNOBS`] set in this process's environment.
    pub fn knobs_from_env() -> BTreeMap<String, String> {
        KNOBS
            .iter()
            .filter_map(|name| {
                std::env::var(name)
                    .ok()
                    .map(|value| ((*name).to_owned(), value))
            })
            .collect()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: DEFAULT_PORT,
            sandbox_port: DEFAULT_SANDBOX_PORT,
            moto_port: DEFAULT_MOTO_PORT,
            local_dir: PathBuf::from(".local"),
            knobs: BTreeMap::new(),
            emulator_faults: None,
            console_dir: console::default_dir(),
        }
    }
}

type Pay = pay::WiredPayApi;
type Query = query::QueryApi<
    aws_adapters::DynamoOrderStore,
    alipay::client::AlipayClient,
    SystemClock,
    aws_adapters::DynamoNonceStore,
>;

type Notify = notify::Notifications<aws_adapters::DynamoOrderStore, SystemClock>;

/// The functions behind the routes, and the authorizer in front of the console's.
struct Functions {
    pay: Pay,
    query: Query,
    notify: Notify,
    admin: admin::WiredAdmin,
    staff_authorizer: authorizer::JwtAuthorizer,
}

/// A running stack; [`LocalStack::shutdown`] stops it (dropping it also stops moto).
pub struct LocalStack {
    api_url: String,
    sandbox: RunningSandbox,
    moto: MotoServer,
    proxy: Option<EmulatorProxy>,
    merchant_key: MerchantKey,
    console_pool: cognito::ConsolePool,
    events: streams::EventsPublisher,
    expiry_queues: ExpiryQueues,
    local_dir: PathBuf,
    sandbox_dir: PathBuf,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    expiry_task: JoinHandle<()>,
    bill_tasks: [JoinHandle<()>; 2],
}

impl LocalStack {
    /// Starts everything and returns once the API answers.
    pub async fn start(options: Options) -> Result<LocalStack, Error> {
        let local_dir = &options.local_dir;
        std::fs::create_dir_all(local_dir)
            .map_err(|e| format!("cannot create {}: {e}", local_dir.display()))?;
        // Bound first: the notify URL given to Alipay needs the port.
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, options.port))
            .await
            .map_err(|e| {
                format!(
                    "merchant API: cannot listen on 127.0.0.1:{}: {e}",
                    options.port
                )
            })?;
        let api_url = format!("http://{}", listener.local_addr()?);
        let merchant_key = keys::ensure(local_dir)?;
        if merchant_key.created {
            tracing::info!(key_id = keys::KEY_ID, file = %merchant_key.keys_file.display(), "merchant API key created");
        }

        tracing::info!("starting moto (the AWS emulator)");
        let moto = match options.moto_port {
            0 => MotoServer::start().await,
            port => MotoServer::start_on(port).await,
        }
        .map_err(|e| format!("moto: {e}"))?;
        let sdk = moto.sdk_config();
        aws_adapters::dynamo::schema::create_table(
            &aws_sdk_dynamodb::Client::new(&sdk),
            ORDERS_TABLE,
        )
        .await?;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let expiry_queues = create_expiry_queue(&sqs).await?;
        let queue_url = expiry_queues.url.clone();
        let console_pool = cognito::create(&sdk).await?;
        let staff_authorizer = authorizer::JwtAuthorizer::fetch(
            &format!(
                "{}/{}/.well-known/jwks.json",
                moto.endpoint_url(),
                console_pool.user_pool_id
            ),
            &authorizer::issuer(test_support::moto::REGION, &console_pool.user_pool_id),
            vec![console_pool.client_id.clone()],
        )
        .await
        .map_err(|e| format!("moto: the console's user pool keys: {e}"))?;
        tracing::info!(endpoint = %moto.endpoint_url(), table = ORDERS_TABLE, %queue_url, user_pool = %console_pool.user_pool_id, "moto ready");
        let events = streams::start(&sdk, ORDERS_TABLE).await?;
        let proxy = match &options.emulator_faults {
            Some(plan) => Some(
                EmulatorProxy::start(&moto.endpoint_url(), plan.clone())
                    .await
                    .map_err(|e| format!("emulator proxy: {e}"))?,
            ),
            None => None,
        };
        // What the functions talk to: moto, or the proxy in front of it.
        let functions_sdk = match &proxy {
            Some(proxy) => sdk
                .clone()
                .into_builder()
                .endpoint_url(proxy.endpoint())
                .build(),
            None => sdk.clone(),
        };

        let sandbox_dir = local_dir.join(SANDBOX_DIR);
        let mut sandbox_config = alipay_sandbox::Config::new(&sandbox_dir);
        sandbox_config.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, options.sandbox_port));
        let sandbox = alipay_sandbox::spawn(sandbox_config)
            .await
            .map_err(|e| format!("alipay sandbox: {e}"))?;
        let identity = sandbox.sandbox().identity();

        let mut vars: BTreeMap<String, String> = options.knobs.clone();
        for (name, value) in [
            ("ORDERS_TABLE", ORDERS_TABLE.to_owned()),
            ("EXPIRY_QUEUE_URL", queue_url),
            ("ALIPAY_APP_ID", identity.app_id.clone()),
            ("ALIPAY_SELLER_ID", identity.seller_id.clone()),
            ("ALIPAY_GATEWAY_URL", sandbox.gateway_url()),
            ("ALIPAY_NOTIFY_URL", format!("{api_url}/alipay/notify")),
            (
                "ALIPAY_APP_PRIVATE_KEY_FILE",
                path_text(&sandbox_dir.join(alipay_sandbox::identity::APP_PRIVATE_KEY_FILE)),
            ),
            (
                "ALIPAY_PUBLIC_KEY_FILE",
                path_text(&sandbox_dir.join(alipay_sandbox::identity::ALIPAY_PUBLIC_KEY_FILE)),
            ),
            ("MERCHANT_API_KEYS_FILE", path_text(&merchant_key.keys_file)),
            ("BILL_BUCKET", bills::BILL_BUCKET.to_owned()),
        ] {
            vars.insert(name.to_owned(), value);
        }
        let lookup = |name: &str| vars.get(name).cloned();
        let pay_config = Config::from_lookup(Function::Pay, &lookup)?;
        let query_config = Config::from_lookup(Function::Query, &lookup)?;
        let pay_adapters = wiring::build_with(&pay_config, &functions_sdk).await?;
        let query_adapters = wiring::build_with(&query_config, &functions_sdk).await?;
        let expiry_config = Config::from_lookup(Function::TimeoutClose, &lookup)?;
        let expiry_adapters = wiring::build_with(&expiry_config, &functions_sdk).await?;
        let expiries = Arc::new(timeout_close::Expiries {
            store: expiry_adapters.orders,
            scheduler: expiry_adapters
                .expiry
                .ok_or("EXPIRY_QUEUE_URL is required")?,
            gateway: expiry_adapters.alipay,
            clock: SystemClock,
            policy: domain::fence::LeasePolicy {
                lease: expiry_config.knobs.claim_lease,
                margin: domain::fence::LeasePolicy::DEFAULT_MARGIN,
            },
            refunds: expiry_config.refund_policy(),
        });
        let notify_config = f2f_runtime::NotifyConfig::from_lookup(&lookup)?;
        let notify_adapters = wiring::build_notify(&notify_config, &functions_sdk).await?;
        let admin_config = f2f_runtime::AdminConfig::from_lookup(&lookup)?;
        let sync_after = query_config.knobs.sync_after;
        let functions = Arc::new(Functions {
            pay: pay::WiredPayApi::wired(&pay_config, pay_adapters)?,
            query: query::QueryApi {
                orders: query::Orders {
                    store: query_adapters.orders,
                    gateway: query_adapters.alipay,
                    clock: SystemClock,
                    sync_after,
                },
                nonces: query_adapters.nonces,
                keys: query_adapters.merchant_keys,
            },
            notify: notify::Notifications {
                store: notify_adapters.orders,
                clock: SystemClock,
                verifier: notify_adapters.verifier,
                app_id: notify_config.app_id,
                seller_id: notify_config.seller_id,
            },
            admin: admin::wired(&functions_sdk, &admin_config),
            staff_authorizer,
        });

        let objects = aws_adapters::S3Objects::new(
            aws_adapters::aws_sdk_s3::Client::new(&sdk),
            bills::BILL_BUCKET,
        );
        objects
            .ensure_bucket()
            .await
            .map_err(|e| format!("moto: the bill bucket: {e}"))?;
        let bill_config = Config::from_lookup(Function::BillFetch, &lookup)?;
        let fetcher = Arc::new(bill_fetch::BillFetcher {
            alipay: wiring::build_with(&bill_config, &sdk).await?.alipay,
            objects: objects.clone(),
            clock: SystemClock,
            schedule: bill_fetch::Schedule {
                deadline_hour: bill_config.knobs.bill_deadline_hour,
            },
        });
        let reconciler = Arc::new(reconcile::Reconciler {
            store: aws_adapters::DynamoOrderStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                ORDERS_TABLE,
            )
            .acting_as(Function::Reconcile.name()),
            objects: objects.clone(),
            clock: SystemClock,
            scratch: std::env::temp_dir(),
            progress: None,
        });

        let fetch_now = fetcher.clone();
        let app = axum::Router::new()
            .route(
                "/_local/bill-fetch",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let fetcher = fetch_now.clone();
                    async move { run_bill_fetch(&fetcher, &body).await }
                }),
            )
            .merge(console_routes(
                options.console_dir.clone(),
                console::config(&console_pool.client_id, test_support::moto::REGION),
                moto.endpoint_url(),
            )?)
            .fallback(serve_request)
            .with_state(functions);
        let (stop, mut stopped) = watch::channel(false);
        let expiry_task = tokio::spawn(expiry::poll(
            sqs,
            expiry_config
                .expiry_queue_url
                .clone()
                .ok_or("EXPIRY_QUEUE_URL is required")?,
            move |event| {
                let expiries = expiries.clone();
                async move {
                    expiries
                        .handle_batch(event)
                        .await
                        .batch_item_failures
                        .into_iter()
                        .map(|failure| failure.item_identifier)
                        .collect()
                }
            },
            stopped.clone(),
        ));
        let bill_tasks = [
            tokio::spawn(bills::schedule(fetcher, stopped.clone())),
            tokio::spawn(bills::deliver(objects, reconciler, stopped.clone())),
        ];
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(%error, "the merchant API server stopped");
            }
        });
        tracing::info!(%api_url, "merchant API ready");
        Ok(LocalStack {
            api_url,
            sandbox,
            moto,
            proxy,
            merchant_key,
            console_pool,
            events,
            expiry_queues,
            local_dir: local_dir.clone(),
            sandbox_dir,
            stop,
            server,
            expiry_task,
            bill_tasks,
        })
    }

    /// `http://127.0.0.1:PORT` of the merchant API.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// `http://127.0.0.1:PORT` of the sandbox (its web page is `/`).
    pub fn sandbox_url(&self) -> &str {
        self.sandbox.base_url()
    }

    pub fn sandbox_gateway_url(&self) -> String {
        self.sandbox.gateway_url()
    }

    pub fn moto_url(&self) -> String {
        self.moto.endpoint_url()
    }

    /// The fault proxy between the functions and moto, when [`Options::emulator_faults`] asked
    /// for one (its counts; faults can be changed or turned off while the stack runs).
    pub fn emulator_proxy(&self) -> Option<&EmulatorProxy> {
        self.proxy.as_ref()
    }

    /// The AWS SDK configuration of the emulator (for tools and tests).
    pub fn aws_sdk_config(&self) -> test_support::SdkConfig {
        self.moto.sdk_config()
    }

    pub fn merchant_key(&self) -> &MerchantKey {
        &self.merchant_key
    }

    /// The console's user pool and app client in moto (its users are [`cognito::USERS`]).
    pub fn console_pool(&self) -> &cognito::ConsolePool {
        &self.console_pool
    }

    /// `http://127.0.0.1:PORT/console/`: the operator console.
    pub fn console_url(&self) -> String {
        format!("{}{}", self.api_url, console::PATH)
    }

    /// `http://127.0.0.1:PORT/cognito-idp/`: Cognito's endpoint for the console.
    pub fn cognito_endpoint(&self) -> String {
        format!("{}{}", self.api_url, console::COGNITO_PATH)
    }

    /// The business events publisher and its queue.
    pub fn events(&self) -> &streams::EventsPublisher {
        &self.events
    }

    /// The file [`run`] writes once the stack is ready: `<local dir>/stack.json`.
    pub fn stack_file(&self) -> PathBuf {
        self.local_dir.join(STACK_FILE)
    }

    /// What `stack.json` holds: where each service answers and the names of what the stack
    /// created, for scripts and tools. The merchant key's secret is not in it, only the path of
    /// the file holding it; the console users' passwords are, as the banner shows them (the
    /// stack's own, local users). Paths are absolute.
    pub fn description(&self) -> serde_json::Value {
        let key = &self.merchant_key;
        serde_json::json!({
            "pid": std::process::id(),
            "api_url": self.api_url,
            "sandbox_url": self.sandbox_url(),
            "sandbox_gateway_url": self.sandbox_gateway_url(),
            "sandbox_dir": absolute_text(&self.sandbox_dir),
            "emulator_endpoint": self.moto_url(),
            "region": test_support::moto::REGION,
            "merchant_key": {
                "key_id": key.key_id,
                "secret_file": absolute_text(&key.secret_file),
                "keys_file": absolute_text(&key.keys_file),
            },
            "table": ORDERS_TABLE,
            "expiry_queue_url": self.expiry_queues.url,
            "expiry_dead_letter_queue_url": self.expiry_queues.dead_letter_url,
            "events_queue": streams::EVENTS_QUEUE,
            "events_queue_url": self.events.queue_url(),
            "events_failure_queue_url": self.events.failure_queue_url(),
            "bill_bucket": bills::BILL_BUCKET,
            "console_url": self.console_url(),
            "cognito": {
                "user_pool_id": self.console_pool.user_pool_id,
                "client_id": self.console_pool.client_id,
                "endpoint": self.cognito_endpoint(),
            },
            "console_users": cognito::USERS.iter().map(|user| serde_json::json!({
                "username": user.username,
                "password": user.password,
                "group": user.group,
            })).collect::<Vec<_>>(),
        })
    }

    /// Writes [`LocalStack::description`] to [`LocalStack::stack_file`] atomically (a
    /// temporary file in the same directory, then renamed over it): a reader sees the previous
    /// file or the whole new one.
    pub fn write_stack_file(&self) -> Result<PathBuf, Error> {
        let path = self.stack_file();
        let temporary = self
            .local_dir
            .join(format!(".{STACK_FILE}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(&self.description())?;
        let written = std::fs::write(&temporary, format!("{text}\n"))
            .and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(format!("cannot write {}: {error}", path.display()).into());
        }
        Ok(path)
    }

    /// Removes the stack file if it is this process's (another stack may have replaced it).
    pub fn remove_stack_file(&self) {
        let path = self.stack_file();
        let ours = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|found| found["pid"] == std::process::id());
        if ours && let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(%error, file = %path.display(), "the stack file could not be removed");
        }
    }

    /// What `make run` prints once everything answers: a short quick start.
    pub fn banner(&self) -> String {
        let api = &self.api_url;
        let sandbox = self.sandbox_url();
        let key = &self.merchant_key;
        let secret = key.secret_file.display();
        format!(
            "\n\
             Local stack ready on 127.0.0.1 (Ctrl-C stops everything; state is in memory).\n\
             \x20 merchant API    {api}\n\
             \x20 Alipay sandbox  {sandbox}/  (web page: trades, QR codes, buyer buttons)\n\
             \x20 AWS emulator    {moto}  (table {ORDERS_TABLE}, queues {EXPIRY_QUEUE} and {events_queue})\n\
             \x20 console         {console}  (sign in as {users})\n\
             \x20                 Cognito: user pool {pool}, app client {client}, endpoint {cognito}\n\
             \x20 everything else {stack_file}  (URLs, queue URLs, bucket, merchant key id and secret file, console users)\n\
             \n\
             Try it (from the repository root):\n\
             \x20 N=T$(date +%s); cargo run -q -p payments-cli -- --api {api} --key-id {key_id} --secret-file {secret} create --out-trade-no $N --amount-fen 1 --subject coffee --scene qr\n\
             \x20 curl -s -X POST {sandbox}/sandbox/trades/$N/pay; echo\n\
             \x20 cargo run -q -p payments-cli -- --api {api} --key-id {key_id} --secret-file {secret} get $N\n",
            moto = self.moto_url(),
            key_id = key.key_id,
            events_queue = streams::EVENTS_QUEUE,
            stack_file = self.stack_file().display(),
            console = self.console_url(),
            users = cognito::USERS
                .iter()
                .map(|user| format!("{} / {}", user.username, user.password))
                .collect::<Vec<_>>()
                .join(" or "),
            pool = self.console_pool.user_pool_id,
            client = self.console_pool.client_id,
            cognito = self.cognito_endpoint(),
        )
    }

    /// Stops the API, the pollers, the sandbox and moto (waiting at most [`SHUTDOWN_TIMEOUT`]
    /// for the first ones; moto is killed and reaped in any case).
    pub async fn shutdown(self) {
        let LocalStack {
            sandbox,
            moto,
            events,
            stop,
            server,
            expiry_task,
            bill_tasks,
            ..
        } = self;
        let stopping = async move {
            let _ = stop.send(true);
            let _ = server.await;
            let _ = expiry_task.await;
            for task in bill_tasks {
                let _ = task.await;
            }
            sandbox.shutdown().await;
            events.shutdown().await;
        };
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, stopping)
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?SHUTDOWN_TIMEOUT, "the stack did not stop in time; stopping moto anyway");
        }
        drop(moto);
        tracing::info!("local stack stopped");
    }
}

/// Starts the stack, writes `stack.json` and prints the quick start, runs until SIGINT
/// (Ctrl-C) or SIGTERM, then removes `stack.json` and stops it all. The signals are watched
/// from the start: one received while the stack is starting stops what has started (moto
/// included) and returns; a second one while it is stopping stops at once.
pub async fn run(options: Options) -> Result<(), Error> {
    let mut termination = Termination::watch()?;
    let stack = tokio::select! {
        started = LocalStack::start(options) => started?,
        () = termination.received() => {
            tracing::info!("stopped while starting");
            return Ok(());
        }
    };
    let written = stack.write_stack_file();
    let stack_file = match written {
        Ok(path) => path,
        Err(error) => {
            stack.shutdown().await;
            return Err(error);
        }
    };
    tracing::info!(file = %stack_file.display(), "stack description written");
    println!("{}", stack.banner());
    termination.received().await;
    tracing::info!("stopping");
    stack.remove_stack_file();
    tokio::select! {
        () = stack.shutdown() => {}
        () = termination.received() => tracing::warn!("stopping at once"),
    }
    Ok(())
}

/// SIGINT and SIGTERM, watched from [`Termination::watch`] on (so neither kills the process
/// with its children left running).
struct Termination {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Termination {
    fn watch() -> Result<Termination, Error> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Termination {
                interrupt: signal(SignalKind::interrupt())
                    .map_err(|e| format!("cannot watch SIGINT: {e}"))?,
                terminate: signal(SignalKind::terminate())
                    .map_err(|e| format!("cannot watch SIGTERM: {e}"))?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Termination {})
        }
    }

    async fn received(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The expiry queue and its dead-letter queue, as in `template.yaml`
/// ([`expiry::queue_attributes`], [`expiry::dead_letter_queue_attributes`]); answers their
/// URLs.
async fn create_expiry_queue(sqs: &aws_sdk_sqs::Client) -> Result<ExpiryQueues, Error> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dead_letter_url = sqs
        .create_queue()
        .queue_name(EXPIRY_DEAD_LETTER_QUEUE)
        .set_attributes(Some(
            expiry::dead_letter_queue_attributes().into_iter().collect(),
        ))
        .send()
        .await
        .map_err(|e| format!("moto: creating the expiry dead-letter queue: {e}"))?
        .queue_url
        .ok_or("moto: the expiry dead-letter queue has no URL")?;
    let dead_letter_arn = sqs
        .get_queue_attributes()
        .queue_url(&dead_letter_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("moto: reading the dead-letter queue's ARN: {e}"))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or("moto: the dead-letter queue has no ARN")?;
    let url = sqs
        .create_queue()
        .queue_name(EXPIRY_QUEUE)
        .set_attributes(Some(
            expiry::queue_attributes(&dead_letter_arn)
                .into_iter()
                .collect(),
        ))
        .send()
        .await
        .map_err(|e| format!("moto: creating the expiry queue: {e}"))?
        .queue_url
        .ok_or("moto: the expiry queue has no URL")?;
    Ok(ExpiryQueues {
        url,
        dead_letter_url,
    })
}

struct ExpiryQueues {
    url: String,
    dead_letter_url: String,
}

/// `POST /_local/bill-fetch`: runs bill-fetch now for `{"date": "yyyy-MM-dd"}` (or
/// yesterday), as invoking the function by hand does; answers what it did.
async fn run_bill_fetch(fetcher: &bills::Fetcher, body: &[u8]) -> axum::response::Response {
    let event: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let (status, answer) = match fetcher.handle(&event).await {
        Ok(fetched) => (
            StatusCode::OK,
            serde_json::to_value(&fetched).unwrap_or_default(),
        ),
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            serde_json::json!({"error": error.to_string()}),
        ),
    };
    axum::response::IntoResponse::into_response((status, axum::Json(answer)))
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// `path` made absolute (against the working directory), as text.
fn absolute_text(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// One HTTP request through the API Gateway emulation to its function.
async fn serve_request(
    State(functions): State<Arc<Functions>>,
    request: AxumRequest,
) -> axum::response::Response {
    let started = Instant::now();
    let request_id = ulid::Ulid::generate().to_string();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let response = match gateway::route(&parts.method, &path) {
        None => gateway::gateway_answer(StatusCode::NOT_FOUND, "Not Found"),
        Some(route) => {
            let verified = match route.needs_staff_token() {
                false => Ok(None),
                true => functions
                    .staff_authorizer
                    .authorize(&parts.headers)
                    .map(Some),
            };
            match verified {
                Err(refusal) => {
                    tracing::info!(%refusal, request_id, "the JWT authorizer refused the request");
                    let mut answer =
                        gateway::gateway_answer(StatusCode::UNAUTHORIZED, "Unauthorized");
                    if let Ok(challenge) = axum::http::HeaderValue::from_str(&refusal.challenge()) {
                        answer
                            .headers_mut()
                            .insert(axum::http::header::WWW_AUTHENTICATE, challenge);
                    }
                    answer
                }
                Ok(verified) => {
                    let call = FunctionCall {
                        route: &route,
                        parts: &parts,
                        path: &path,
                        request_id: &request_id,
                        verified: verified.as_ref(),
                    };
                    invoke(&functions, call, body).await
                }
            }
        }
    };
    let mut response = response;
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", value);
    }
    tracing::info!(
        method = %parts.method,
        path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        request_id,
        "api request"
    );
    response
}

/// What the gateway hands on to a route's function, besides the body.
struct FunctionCall<'a> {
    route: &'a gateway::Route,
    parts: &'a axum::http::request::Parts,
    path: &'a str,
    request_id: &'a str,
    /// The authorizer's verified token, on the routes behind it.
    verified: Option<&'a authorizer::VerifiedJwt>,
}

/// Reads the body, invokes the route's function with the payload v2 event and answers its
/// response (or API Gateway's own answer when the body is too large or the function too slow).
async fn invoke(
    functions: &Functions,
    call: FunctionCall<'_>,
    body: axum::body::Body,
) -> axum::response::Response {
    let Ok(bytes) = axum::body::to_bytes(body, gateway::MAX_REQUEST_BYTES).await else {
        return gateway::gateway_answer(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let http = HttpRequest {
        method: &call.parts.method,
        path: call.path,
        raw_query: call.parts.uri.query().unwrap_or(""),
        headers: &call.parts.headers,
        body: &bytes,
    };
    let event = gateway::event(&http, call.route, call.request_id, call.verified);
    let request = match gateway::lambda_request(&event) {
        Ok(request) => request,
        Err(error) => {
            tracing::error!(%error, "the event could not be converted");
            return gateway::gateway_answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            );
        }
    };
    let answer = async {
        match call.route.function() {
            gateway::Function::Pay => functions.pay.handle(request).await,
            gateway::Function::Query => functions.query.handle(request).await,
            gateway::Function::Notify => functions.notify.handle(request).await,
            gateway::Function::Admin => functions.admin.handle(request).await,
        }
    };
    match tokio::time::timeout(gateway::INTEGRATION_TIMEOUT, answer).await {
        Ok(response) => gateway::http_response(response),
        Err(_) => gateway::gateway_answer(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
    }
}

/// The console's page (`/console/`, `/console` sends there), its `config.json`, and Cognito's
/// endpoint for it (`POST /cognito-idp/`, passed to moto at `moto_endpoint`).
fn console_routes<S: Clone + Send + Sync + 'static>(
    dir: PathBuf,
    config: serde_json::Value,
    moto_endpoint: String,
) -> Result<axum::Router<S>, Error> {
    use axum::routing::{get, post};
    let dir = Arc::new(dir);
    let index_dir = dir.clone();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .no_proxy()
        .build()?;
    let moto_endpoint = Arc::new(format!("{moto_endpoint}/"));
    Ok(axum::Router::new()
        .route(
            "/console",
            get(|| async { axum::response::Redirect::permanent(console::PATH) }),
        )
        .route(
            console::PATH,
            get(move || {
                let dir = index_dir.clone();
                async move { console::serve(&dir, "").await }
            }),
        )
        .route(
            "/console/config.json",
            get(move || {
                let config = config.clone();
                async move { axum::Json(config) }
            }),
        )
        .route(
            "/console/{*file}",
            get(
                move |axum::extract::Path(file): axum::extract::Path<String>| {
                    let dir = dir.clone();
                    async move { console::serve(&dir, &file).await }
                },
            ),
        )
        .route(
            console::COGNITO_PATH,
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let http = http.clone();
                    let endpoint = moto_endpoint.clone();
                    async move { cognito::proxy(&http, &endpoint, &headers, body).await }
                },
            ),
        ))
}
