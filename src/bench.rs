//! Benchmarks (SPEC §13), run by `elicence bench …`: throughput and latency percentiles with the
//! machine's core count, on a fresh application in a temporary folder (or the database given).

pub mod draft;
pub mod log;
pub mod qr;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::app::{Actor, App};
use crate::config::Settings;
use crate::licence::RecordInput;

/// Throughput and latency of one measured operation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub backend: String,
    pub cores: usize,
    pub concurrency: usize,
    pub operations: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Report {
    pub(crate) fn new(
        name: &str,
        backend: &str,
        concurrency: usize,
        mut samples: Vec<Duration>,
        elapsed: Duration,
    ) -> Report {
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1e6
        };
        Report {
            name: name.to_string(),
            backend: backend.to_string(),
            cores: cores(),
            concurrency,
            operations: samples.len(),
            seconds: elapsed.as_secs_f64(),
            per_second: samples.len() as f64 / elapsed.as_secs_f64(),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            max_us: at(1.0),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{:<28} {:>9.0}/s  p50 {:>8.1} µs  p90 {:>8.1} µs  p99 {:>8.1} µs  max {:>9.1} µs  ({} ops, {} cores, concurrency {}, {})",
            self.name,
            self.per_second,
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.max_us,
            self.operations,
            self.cores,
            self.concurrency,
            self.backend
        )
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A fresh application on a temporary folder; `database_url` None means SQLite in that folder.
pub async fn scratch_app(
    dir: &std::path::Path,
    templates: &std::path::Path,
    database_url: Option<&str>,
) -> anyhow::Result<App> {
    let data = dir.join("data");
    let vars = [
        ("ELICENCE_DATA_DIR", data.display().to_string()),
        ("ELICENCE_KEYS_DIR", dir.join("keys").display().to_string()),
        ("ELICENCE_TEMPLATES_DIR", templates.display().to_string()),
        (
            "ELICENCE_VERIFY_BASE",
            "https://zz.example.gov.cn".to_string(),
        ),
        // Measurable with the verification cache off (0) as well as on.
        (
            "ELICENCE_VERIFY_CACHE_SECONDS",
            std::env::var("ELICENCE_VERIFY_CACHE_SECONDS").unwrap_or_else(|_| "2".into()),
        ),
    ];
    let mut settings = Settings::load_from(None, |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })?;
    if let Some(url) = database_url {
        settings.database_url = crate::config::DatabaseUrl::new(url);
    }
    Ok(App::open(settings).await?)
}

fn backend_name(app: &App) -> &'static str {
    match app.store.backend() {
        crate::store::Backend::Sqlite => "sqlite",
        crate::store::Backend::Postgres => "postgres",
    }
}

/// Issues `count` licences, cycling through the directory's types.
async fn issue_samples(app: &App, count: usize) -> anyhow::Result<Vec<crate::app::Issued>> {
    let actor = Actor::local_operator();
    let types: Vec<_> = app.directory.types().cloned().collect();
    let run = rand::random::<u32>();
    let mut texts = Vec::with_capacity(count);
    for i in 0..count {
        let t = &types[i % types.len()];
        let mut record: RecordInput = RecordInput::example_of(t);
        record.number = Some(format!("BENCH-{run}-{i}"));
        texts.push(app.issue(&actor, t.code.as_str(), &record, None).await?);
    }
    Ok(texts)
}

/// Signing a version (both records) and checking a QR token offline, on one core.
pub async fn sign(app: &App, count: usize) -> anyhow::Result<Vec<Report>> {
    use crate::signing::trust::TrustStore;
    let issued = issue_samples(app, 1).await?.remove(0);
    let trust = TrustStore::new(&app.trust_list(), None)?;
    let token = crate::signing::qr::token_from_text(&issued.qr_text)?;
    let row = app.find(&issued.licence_id).await?;
    let stored = app.store.version(row.pk, 1).await?.expect("just issued");
    let full = stored.full()?;
    let keys = app.key_ring().await?;
    let (key, kid) = keys.signing_key(&full.claims.iss)?;

    let mut samples = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let version = crate::signing::sign_version(
            key,
            kid,
            crate::signing::Unsigned {
                id: full.claims.cti.clone(),
                licence_name: &full.licence_name,
                record: full.record.clone(),
                issued_at: crate::time_util::now(),
                directory_version: full.directory_version,
                prev: None,
                status_index: 1,
                verify_base: stored.verify_base.clone(),
            },
        );
        std::hint::black_box(version);
        samples.push(t.elapsed());
    }
    let signing = Report::new(
        "sign version (2 signatures)",
        "-",
        1,
        samples,
        started.elapsed(),
    );

    let mut samples = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let checked = crate::verify::check_token(&token, &trust);
        assert!(checked.is_ok());
        samples.push(t.elapsed());
    }
    let checking = Report::new(
        "check QR token (chain+sig)",
        "-",
        1,
        samples,
        started.elapsed(),
    );
    Ok(vec![signing, checking])
}

/// Online verification over HTTP under concurrent load: `POST /api/v1/verify` on a server in
/// this process (rate limit off), `concurrency` clients sharing the machine's cores with it.
pub async fn verify_http(
    app: App,
    licences: usize,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let backend = backend_name(&app);
    let texts: Vec<String> = issue_samples(&app, licences)
        .await?
        .into_iter()
        .map(|i| i.qr_text)
        .collect();
    let texts = Arc::new(texts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/v1/verify", listener.local_addr()?);
    let app = Arc::new(app);
    // As in `serve`: verifications are counted in memory and stored every few seconds.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let figures = tokio::spawn(app.clone().keep_figures(stopped));
    let router = crate::http::router(
        app,
        crate::http::HttpOptions {
            verify_per_minute: None,
            ..Default::default()
        },
    );
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;

    let run = |total: usize| {
        let next = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, url, texts, next) =
                    (client.clone(), url.clone(), texts.clone(), next.clone());
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return Ok::<_, anyhow::Error>(samples);
                        }
                        let body = serde_json::json!({"input": texts[i % texts.len()]});
                        let t = Instant::now();
                        let response = client.post(&url).json(&body).send().await?;
                        anyhow::ensure!(
                            response.status().is_success(),
                            "status {}",
                            response.status()
                        );
                        response.bytes().await?;
                        samples.push(t.elapsed());
                    }
                })
            })
            .collect();
        async move {
            let mut all = Vec::with_capacity(total);
            for task in tasks {
                all.extend(task.await??);
            }
            Ok::<_, anyhow::Error>(all)
        }
    };
    run(requests.min(1000)).await?; // warm up connections and caches
    let started = Instant::now();
    let samples = run(requests).await?;
    let report = Report::new(
        "verify over HTTP",
        backend,
        concurrency,
        samples,
        started.elapsed(),
    );
    server.abort();
    let _ = stop.send(true);
    let _ = figures.await;
    Ok(report)
}

/// Rendering PDFs on one core, over the sample types: the whole render, then its stages (building
/// the QR code, laying out the page, writing the file); and the size of each type's PDF in bytes.
pub async fn render(
    app: &App,
    count: usize,
) -> anyhow::Result<(Vec<Report>, Vec<(String, usize)>)> {
    let actor = Actor::local_operator();
    let issued = issue_samples(app, app.directory.types().count()).await?;
    let mut sizes = Vec::new();
    let mut jobs = Vec::new();
    for i in &issued {
        let row = app.find(&i.licence_id).await?;
        let stored = app.store.version(row.pk, 1).await?.expect("just issued");
        let full = stored.full()?;
        let licence_type = app.licence_type(&row.key.type_code)?.clone();
        sizes.push((
            licence_type.name.clone(),
            app.pdf(&actor, &i.id, None).await?.len(),
        ));
        let seal = app.pdf_seal(&stored.kid).ok();
        jobs.push((licence_type, full, i.qr_text.clone(), seal));
    }
    let mut reports = Vec::new();
    let mut measure = |name: &str,
                       mut step: Box<dyn FnMut(usize) -> anyhow::Result<()> + '_>|
     -> anyhow::Result<()> {
        let mut samples = Vec::with_capacity(count);
        let started = Instant::now();
        for n in 0..count {
            let t = Instant::now();
            step(n)?;
            samples.push(t.elapsed());
        }
        reports.push(Report::new(name, "-", 1, samples, started.elapsed()));
        Ok(())
    };
    let renderer = &app.renderer;
    measure(
        "render PDF page",
        Box::new(|n| {
            let (licence_type, full, qr_text, seal) = &jobs[n % jobs.len()];
            std::hint::black_box(renderer.render(licence_type, full, qr_text, seal.as_ref())?);
            Ok(())
        }),
    )?;
    measure(
        "  of which: build QR code",
        Box::new(|n| {
            std::hint::black_box(crate::signing::qr::qr_code(&jobs[n % jobs.len()].2)?);
            Ok(())
        }),
    )?;
    measure(
        "  of which: lay out page",
        Box::new(|n| {
            let (licence_type, full, qr_text, _) = &jobs[n % jobs.len()];
            std::hint::black_box(renderer.compose(licence_type, full, qr_text)?);
            Ok(())
        }),
    )?;
    // Every layout shipped, the directory's own and those earlier licences still render with.
    for (layout, generation) in renderer.layouts() {
        let jobs: Vec<_> = jobs
            .iter()
            .map(|(licence_type, full, qr_text, seal)| {
                let mut licence_type = licence_type.clone();
                licence_type.template = layout.to_string();
                (licence_type, full, qr_text, seal)
            })
            .collect();
        measure(
            &format!("{layout} (renderer {generation})"),
            Box::new(move |n| {
                let (licence_type, full, qr_text, seal) = &jobs[n % jobs.len()];
                std::hint::black_box(renderer.render(
                    licence_type,
                    full,
                    qr_text,
                    seal.as_ref(),
                )?);
                Ok(())
            }),
        )?;
    }
    Ok((reports, sizes))
}

/// Reading the change feed (pages of 500) and pushing every event into the reference receiver
/// (`city-library`, started from beside this binary); returns the two reports.
pub async fn feed(app: App, events: usize, dir: &std::path::Path) -> anyhow::Result<Vec<Report>> {
    let backend = backend_name(&app);
    issue_samples(&app, events).await?;
    let app = Arc::new(app);
    let library = Actor {
        name: "bench".into(),
        source: "bench".into(),
        department: None,
        roles: vec![crate::app::Role::Library],
    };
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut read = 0;
    for _ in 0..3 {
        let mut after = 0;
        loop {
            let t = Instant::now();
            let page = app.feed(&library, after, 500).await?;
            samples.push(t.elapsed());
            if page.events.is_empty() {
                break;
            }
            read += page.events.len();
            after = page.next;
        }
    }
    let elapsed = started.elapsed();
    let mut reading = Report::new("feed read (pages of 500)", backend, 1, samples, elapsed);
    reading.operations = read;
    reading.per_second = read as f64 / elapsed.as_secs_f64();

    // The reference receiver, with the trust list, on a port of its own.
    let trust = dir.join("trust.json");
    std::fs::write(&trust, serde_json::to_vec(&app.trust_list())?)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let receiver_bin = std::env::current_exe()?.with_file_name("city-library");
    let mut receiver = std::process::Command::new(&receiver_bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--db")
        .arg(dir.join("library.sqlite"))
        .arg("--trust")
        .arg(&trust)
        .env("CITY_LIBRARY_SECRET", "bench")
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (build it: cargo build --release)",
                receiver_bin.display()
            )
        })?;
    let url = format!("http://127.0.0.1:{port}");
    while reqwest::get(format!("{url}/status")).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pusher = crate::sync::Pusher::new(app.clone(), &url, b"bench");
    let mut samples = Vec::new();
    let mut pushed = 0;
    let started = Instant::now();
    loop {
        let t = Instant::now();
        match pusher.step().await? {
            crate::sync::Step::Delivered { count, .. } => pushed += count,
            crate::sync::Step::Idle => break,
            other => anyhow::bail!("push failed: {other:?}"),
        }
        samples.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    let _ = receiver.kill();
    let mut pushing = Report::new(
        "push into city-library (100/req)",
        backend,
        1,
        samples,
        elapsed,
    );
    pushing.operations = pushed;
    pushing.per_second = pushed as f64 / elapsed.as_secs_f64();
    Ok(vec![reading, pushing])
}

/// What `bench convert` measured.
#[derive(Debug, Serialize)]
pub struct ConvertReport {
    pub backend: String,
    pub cores: usize,
    pub rows: u64,
    pub issued: u64,
    pub seconds: f64,
    pub licences_per_second: f64,
    /// Time per licence in each stage (CPU time summed over cores for the parallel ones).
    pub per_licence_ms: crate::batch::Stages,
    pub peak_rss_mb: f64,
}

impl ConvertReport {
    pub fn lines(&self) -> String {
        let s = &self.per_licence_ms;
        format!(
            "convert {} rows ({}, {} cores): {} issued in {:.1} s = {:.0} licences/s, peak RSS {:.0} MB\n\
             per licence: check {:.3} ms, scan {:.3} ms, reserve {:.3} ms, sign {:.3} ms, render {:.3} ms, \
             archive {:.3} ms, commit {:.3} ms",
            self.rows,
            self.backend,
            self.cores,
            self.issued,
            self.seconds,
            self.licences_per_second,
            self.peak_rss_mb,
            s.check_ms,
            s.scans_ms,
            s.reserve_ms,
            s.sign_ms,
            s.render_ms,
            s.archive_ms,
            s.commit_ms,
        )
    }
}

/// Generates a clean batch of `rows` rows (not timed), then converts it and reports throughput,
/// time per stage and the peak resident memory of the conversion.
pub async fn convert(app: App, rows: u64, dir: &std::path::Path) -> anyhow::Result<ConvertReport> {
    let app = Arc::new(app);
    let font = std::fs::read(app.settings.templates_dir.join(crate::render::FONT_FILE))?;
    let batch = dir.join("batch");
    let options = crate::batch::sample::Options {
        rows,
        bad_rate: 0.0,
        seed: rand::random(),
        gb18030: false,
        max_scan_bytes: app.settings.max_scan_bytes,
        types: Vec::new(),
        scans: Default::default(),
    };
    crate::batch::sample::write(&app.directory, &font, &batch, &options)?;
    reset_peak_rss();
    let actor = Actor::local_operator();
    let run = crate::batch::create(&app, &actor, false).await?;
    let summary = crate::batch::convert(&app, &actor, &run, &batch, &crate::batch::Quiet).await?;
    let issued = summary.counts.issued.max(1) as f64;
    let per = |ms: f64| ms / issued;
    let s = summary.stages;
    Ok(ConvertReport {
        backend: backend_name(&app).into(),
        cores: cores(),
        rows,
        issued: summary.counts.issued,
        seconds: summary.seconds,
        licences_per_second: summary.counts.issued as f64 / summary.seconds,
        per_licence_ms: crate::batch::Stages {
            check_ms: per(s.check_ms),
            scans_ms: per(s.scans_ms),
            reserve_ms: per(s.reserve_ms),
            sign_ms: per(s.sign_ms),
            render_ms: per(s.render_ms),
            archive_ms: per(s.archive_ms),
            commit_ms: per(s.commit_ms),
        },
        peak_rss_mb: peak_rss_kb() as f64 / 1024.0,
    })
}

/// Resets the kernel's peak-RSS mark (Linux), so the peak measured is the conversion's own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set size of this process in KiB (`VmHWM`), 0 where unknown.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
