//! The console's 存量证照转换 pages over HTTP (SPEC §9, §14; issue #15 item 2): a clerk uploads
//! a sample batch with bad rows as a zip, watches the job end, downloads the rejected rows as
//! GB18030 CSV with their reasons, corrects one and resubmits the CSV with its scan as separate
//! files, and that row is issued. Refusals: a role that may not convert (403, audited), a forged
//! CSRF token (403, nothing kept), another department's clerk (404 for the job, its CSV and its
//! events), a body declared over the upload limit (413).

use std::path::Path;
use std::time::Duration;

use elicence::app::Role;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, LOCATION};
use reqwest::StatusCode;

use crate::common::*;
use crate::console_signin::{account_in, audited, first_sign_in, hidden_value, Person};
use crate::uploads::{raw_request, sample_folder, sample_folder_looking, zip_folder};

/// A person of `department` with `roles` (none needing a second factor), signed in with their
/// password changed.
async fn signed_in<'a>(
    server: &'a TestServer,
    login: &str,
    roles: &[Role],
    department: &str,
) -> Person<'a> {
    let one_time = account_in(server, login, roles, department).await;
    let mut person = Person::new(server);
    let secret = first_sign_in(&mut person, login, &one_time).await;
    assert!(secret.is_empty(), "{login} needed no second factor");
    person
}

/// A file part of a form: (field, file name, bytes); a text field has no file name.
type Part<'p> = (&'p str, Option<&'p str>, &'p [u8]);

/// Posts `parts` as multipart/form-data, in order, with the person's cookie.
async fn post_form(
    person: &Person<'_>,
    path: &str,
    parts: &[Part<'_>],
) -> (StatusCode, String, Option<String>) {
    let boundary = "----elicence-test-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(person.server.url(path))
        .header(COOKIE, person.cookie.clone().unwrap())
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let to = response
        .headers()
        .get(LOCATION)
        .map(|l| l.to_str().unwrap().to_string());
    (status, response.text().await.unwrap(), to)
}

/// GETs `path` with the person's cookie: the whole response.
async fn fetch(person: &Person<'_>, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(person.server.url(path))
        .header(COOKIE, person.cookie.clone().unwrap())
        .send()
        .await
        .unwrap()
}

/// Polls a job's page until it no longer reloads itself (the job ended); returns the page.
async fn ended(person: &mut Person<'_>, path: &str) -> String {
    for _ in 0..600 {
        let (status, page, _) = person.get(path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        if !page.contains("http-equiv=\"refresh\"") {
            assert!(!page.contains("data-progress-events"), "{page}");
            return page;
        }
        assert!(page.contains("data-progress-events"), "{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the job at {path} did not end");
}

/// (line, kind) of each row the sample broke on purpose.
pub fn broken_rows(dir: &Path) -> Vec<(u64, String)> {
    let mut reader = csv::Reader::from_path(dir.join("expected-rejections.csv")).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].parse().unwrap(), r[1].to_string())
        })
        .collect()
}

#[tokio::test]
async fn a_clerk_uploads_a_batch_downloads_its_rejected_rows_and_resubmits_a_corrected_one() {
    let s = TestServer::start().await;
    let mut clerk = signed_in(&s, "zhao.clerk", &[Role::Clerk], MARKET_BUREAU).await;
    let dir = sample_folder(&s.t.app, s.t.dir.path(), 30, 0.4, 71, &[FOOD]);
    let broken = broken_rows(&dir);
    assert!(broken.len() >= 4, "{broken:?}");

    let (status, page, _) = clerk.get("/console/batches").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("aria-current=\"page\">存量证照转换"),
        "{page}"
    );
    assert!(page.contains("还没有转换任务"), "{page}");
    let csrf = hidden_value(&page, "csrf").unwrap();
    let zip = zip_folder(&dir);
    let (status, page, to) = post_form(
        &clerk,
        "/console/batches",
        &[
            ("csrf", None, csrf.as_bytes()),
            ("zip", Some("batch.zip"), &zip),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let job_page = to.unwrap();
    let id = job_page
        .strip_prefix("/console/batches/")
        .unwrap()
        .to_string();
    assert_eq!(audited(&s, "batch.submit").await[0].0, "ok");

    // Its progress as server-sent events, from (most likely) while it runs until it ends.
    let events = fetch(&clerk, &format!("{job_page}/events")).await;
    assert_eq!(events.headers()[CONTENT_TYPE], "text/event-stream");
    let events = tokio::time::timeout(Duration::from_secs(60), events.text())
        .await
        .expect("the stream closes when the job ends")
        .unwrap();
    let last = events
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let last: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["finished"], true, "{events}");
    assert_eq!(last["total"], 30);
    assert_eq!(last["done"], 30);
    assert_eq!(last["rejected"], broken.len());

    let page = ended(&mut clerk, &job_page).await;
    assert!(page.contains("已完成"), "{page}");
    assert!(
        page.contains(&format!("data-figure=\"rejected\">{}<", broken.len())),
        "{page}"
    );
    assert!(
        page.contains("href=\"/console/licences/"),
        "issued rows link to their licences"
    );
    // A rejected row says why in Chinese, with the column and the service's own words.
    let (_, rejected_only, _) = clerk.get(&format!("{job_page}?outcome=rejected")).await;
    assert!(
        rejected_only.contains("不是日期，请按 年-月-日 填写"),
        "{rejected_only}"
    );
    assert!(
        rejected_only.contains("有效期起始日期（valid_from）"),
        "{rejected_only}"
    );
    assert!(!rejected_only.contains("已签发</td>"), "{rejected_only}");
    let (status, _, _) = clerk.get(&format!("{job_page}?outcome=lost")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Paging: after the last line there is nothing.
    let (_, past, _) = clerk.get(&format!("{job_page}?after_line=1000")).await;
    assert!(past.contains("没有符合条件的行"), "{past}");
    let (_, list, _) = clerk.get("/console/batches").await;
    assert!(list.contains(&id), "{list}");

    // The rejected rows in GB18030, with their cells and a last column saying why.
    let answer = fetch(&clerk, &format!("{job_page}/rejected.csv")).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()[CONTENT_TYPE], "text/csv; charset=gb18030");
    assert_eq!(
        answer.headers()[CONTENT_DISPOSITION],
        format!("attachment; filename=\"rejected-{id}.csv\"").as_str()
    );
    let bytes = answer.bytes().await.unwrap();
    assert!(std::str::from_utf8(&bytes).is_err(), "GB18030, not UTF-8");
    let (text, _, unmappable) = encoding_rs::GB18030.decode(&bytes);
    assert!(!unmappable);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header.last().unwrap(), "rejection_reason");
    assert_eq!(&header[..2], ["type_code", "number"]);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), broken.len());
    for ((line, kind), record) in broken.iter().zip(&records) {
        let reason = &record[record.len() - 1];
        assert!(
            reason.starts_with(&format!("第{line}行")),
            "{kind}: {reason}"
        );
    }
    // The same in UTF-8 starts with a BOM.
    let utf8 = fetch(&clerk, &format!("{job_page}/rejected.csv?encoding=utf-8")).await;
    let utf8 = utf8.bytes().await.unwrap();
    assert!(utf8.starts_with("\u{feff}type_code,".as_bytes()));
    let bad = fetch(&clerk, &format!("{job_page}/rejected.csv?encoding=latin1")).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Correct the row with the impossible date and send the CSV back as it is, with its scan.
    let (line, _) = broken.iter().find(|(_, k)| k == "impossible_date").unwrap();
    let at = broken.iter().position(|(l, _)| l == line).unwrap();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let fixed_from = elicence::time_util::format_date(
        elicence::time_util::today_cst() - time::Duration::days(10),
    );
    let mut corrected = csv::Writer::from_writer(Vec::new());
    corrected.write_record(&header).unwrap();
    for (i, record) in records.iter().enumerate() {
        let mut cells: Vec<String> = record.iter().map(String::from).collect();
        if i == at {
            assert_eq!(cells[column("valid_from")], "2023-02-30");
            cells[column("valid_from")] = fixed_from.clone();
        }
        corrected.write_record(&cells).unwrap();
    }
    let corrected = corrected.into_inner().unwrap();
    let (corrected, _, _) = encoding_rs::GB18030.encode(std::str::from_utf8(&corrected).unwrap());
    let fixed = &records[at];
    let scan_path = fixed[column("scan")].to_string();
    let scan_name = scan_path.rsplit('/').next().unwrap();
    let scan = std::fs::read(dir.join(&scan_path)).unwrap();
    assert!(page_has_resubmit_form(&rejected_only));
    let (status, page, to) = post_form(
        &clerk,
        "/console/batches",
        &[
            ("csrf", None, csrf.as_bytes()),
            ("manifest", Some(&format!("rejected-{id}.csv")), &corrected),
            ("scans", Some(scan_name), &scan),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let second = to.unwrap();
    ended(&mut clerk, &second).await;
    let second_id = second.rsplit('/').next().unwrap();
    let rows = s.t.app.store.batch_rows(second_id, 0, 1000).await.unwrap();
    assert_eq!(rows.len(), broken.len());
    let issued: Vec<_> = rows
        .iter()
        .filter(|r| r.outcome == elicence::batch::RowOutcome::Issued)
        .collect();
    assert_eq!(issued.len(), 1, "{rows:?}");
    assert_eq!(issued[0].number, fixed[column("number")]);

    // A name with a path in it is refused, and nothing is submitted.
    let (status, page, _) = post_form(
        &clerk,
        "/console/batches",
        &[
            ("csrf", None, csrf.as_bytes()),
            ("manifest", Some("manifest.csv"), &corrected),
            ("scans", Some("../x.jpg"), &scan),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("has a path in it"), "{page}");
}

fn page_has_resubmit_form(page: &str) -> bool {
    page.contains("提交更正后的文件")
        && page.contains("name=\"manifest\"")
        && page.contains("name=\"scans\"")
}

#[tokio::test]
async fn refusals_are_a_403_for_roles_and_forged_forms_and_a_404_for_another_department() {
    let s = TestServer::start().await;
    let dir = sample_folder(&s.t.app, s.t.dir.path(), 3, 0.0, 72, &[FOOD]);
    let zip = zip_folder(&dir);

    // A supervisor reads jobs but may not convert: 403, and the refusal is audited.
    let supervisor = signed_in(&s, "qian.supervisor", &[Role::Supervisor], MARKET_BUREAU).await;
    let mut supervisor = supervisor;
    let (status, page, _) = supervisor.get("/console/batches").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        !page.contains("name=\"zip\""),
        "no upload form for a supervisor"
    );
    let csrf = hidden_value(&page, "csrf").unwrap();
    let (status, page, _) = post_form(
        &supervisor,
        "/console/batches",
        &[
            ("csrf", None, csrf.as_bytes()),
            ("zip", Some("b.zip"), &zip),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("您无权进行这项操作"), "{page}");
    let submits = audited(&s, "batch.submit").await;
    assert_eq!(submits[0].0, "refused: forbidden", "{submits:?}");

    // A forged token: 403, audited, no job.
    let mut clerk = signed_in(&s, "sun.clerk", &[Role::Clerk], MARKET_BUREAU).await;
    let (status, _, _) = post_form(
        &clerk,
        "/console/batches",
        &[("csrf", None, b"forged"), ("zip", Some("b.zip"), &zip)],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A file before any token is as forged.
    let (status, _, _) =
        post_form(&clerk, "/console/batches", &[("zip", Some("b.zip"), &zip)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An over-long token is no token (and is not read whole).
    let long = vec![b'x'; 10_000];
    let (status, _, _) = post_form(
        &clerk,
        "/console/batches",
        &[("csrf", None, &long), ("zip", Some("b.zip"), &zip)],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, list, _) = clerk.get("/console/batches").await;
    assert!(list.contains("还没有转换任务"), "{list}");
    assert_eq!(audited(&s, "batch.submit").await.len(), 4);

    // A body declared over the upload limit is refused before it is read: 413, audited.
    let csrf = hidden_value(&list, "csrf").unwrap();
    let declared = s.t.app.settings.max_upload_bytes + (1 << 20);
    let cookie = clerk.cookie.clone().unwrap();
    let head = format!(
        "POST /console/batches HTTP/1.1\r\nhost: x\r\ncookie: {cookie}\r\n\
         content-type: multipart/form-data; boundary=XyZ\r\ncontent-length: {declared}\r\n\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"zip\"; filename=\"big.zip\"\r\n\r\n"
    );
    let base = s.base.clone();
    // Only the start of the body is sent: the 413 must come without waiting for the rest.
    let answer = tokio::task::spawn_blocking(move || raw_request(&base, &head, b""))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let submits = audited(&s, "batch.submit").await;
    assert_eq!(submits.len(), 5, "{submits:?}");
    assert!(
        submits
            .iter()
            .any(|(o, d)| o.contains("too_large") || d.contains("over the limit")),
        "{submits:?}"
    );

    // A real job, then another department's clerk cannot see it, its CSV or its events.
    let (_, page, _) = clerk.get("/console/batches").await;
    let csrf = hidden_value(&page, "csrf").unwrap();
    let (status, page, to) = post_form(
        &clerk,
        "/console/batches",
        &[
            ("csrf", None, csrf.as_bytes()),
            ("all_or_nothing", None, b"1"),
            ("zip", Some("b.zip"), &zip),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let job_page = to.unwrap();
    let page = ended(&mut clerk, &job_page).await;
    assert!(page.contains("全部成功才签发"), "{page}");

    let mut other = signed_in(&s, "zhou.clerk", &[Role::Clerk], DISABILITY_FEDERATION).await;
    for path in [
        job_page.clone(),
        format!("{job_page}/rejected.csv"),
        format!("{job_page}/events"),
    ] {
        let (status, page, _) = other.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {page}");
    }
    let (_, list, _) = other.get("/console/batches").await;
    assert!(list.contains("还没有转换任务"), "{list}");
    let reads = audited(&s, "batch.read").await;
    assert!(
        reads
            .iter()
            .filter(|(o, _)| o.starts_with("refused"))
            .count()
            >= 3,
        "{reads:?}"
    );

    // The job's own clerk gets its progress as server-sent events; an ended job's stream
    // carries one event and closes.
    let events = fetch(&clerk, &format!("{job_page}/events")).await;
    assert_eq!(events.status(), StatusCode::OK);
    assert_eq!(events.headers()[CONTENT_TYPE], "text/event-stream");
    let text = tokio::time::timeout(Duration::from_secs(10), events.text())
        .await
        .expect("the stream of an ended job closes")
        .unwrap();
    assert!(text.contains("event: progress"), "{text}");
    assert!(
        text.contains("\"finished\":true") && text.contains("\"total\":3"),
        "{text}"
    );
}

/// Issue #19 in the console: a clerk uploads scans for 识别起草, waits for the draft, sees the
/// rows in doubt first with their scans, corrects them from the paper, ticks them and sends
/// them to conversion, where they are issued. Another clerk cannot see the draft.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_drafts_from_scans_corrects_the_flagged_cells_and_converts() {
    let s = TestServer::start().await;
    let mut clerk = signed_in(&s, "wu.clerk", &[Role::Clerk], MARKET_BUREAU).await;
    // Degraded scans (askew, noisy, JPEG 40): some cells come out in doubt.
    let look = elicence::batch::sample::ScanLook {
        dpi: 100,
        degrade: true,
    };
    let dir = sample_folder_looking(&s.t.app, s.t.dir.path(), 4, 0.0, 73, &[FOOD], look);
    let (_, batches, _) = clerk.get("/console/batches").await;
    assert!(batches.contains("从扫描件识别起草清单"), "{batches}");
    let csrf = hidden_value(&batches, "csrf").unwrap();
    let mut truth = csv::Reader::from_path(dir.join("manifest.csv")).unwrap();
    let header: Vec<String> = truth.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<Vec<String>> = truth
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let scans: Vec<(String, Vec<u8>)> = rows
        .iter()
        .map(|r| {
            let name = r[header.iter().position(|c| c == "scan").unwrap()].clone();
            let file = name.trim_start_matches("scans/").to_string();
            (file, std::fs::read(dir.join(&name)).unwrap())
        })
        .collect();
    let mut parts: Vec<Part<'_>> = vec![
        ("csrf", None, csrf.as_bytes()),
        ("type", None, FOOD.as_bytes()),
    ];
    for (file, bytes) in &scans {
        parts.push(("scans", Some(file.as_str()), bytes.as_slice()));
    }
    let (status, said, to) = post_form(&clerk, "/console/drafts", &parts).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{said}");
    let draft = to.unwrap();
    let records = audited(&s, "batch.draft").await;
    assert!(
        records
            .iter()
            .any(|(outcome, detail)| outcome == "ok" && detail == "4 scans"),
        "{records:?}"
    );

    let mut review = String::new();
    for _ in 0..300 {
        let (status, page, _) = clerk.get(&draft).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        if !page.contains("正在识别") {
            review = page;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        review.contains("已核对"),
        "the draft was not ready: {review}"
    );
    // Rows in doubt come first.
    let legends: Vec<bool> = review
        .split("<legend>")
        .skip(1)
        .map(|l| l.split("</legend>").next().unwrap().contains("待核对"))
        .collect();
    assert_eq!(legends.len(), 4, "{review}");
    assert!(
        legends[0],
        "degraded scans leave something in doubt: {review}"
    );
    assert!(legends.windows(2).all(|w| w[0] >= w[1]), "{legends:?}");
    // Each scan is shown, to its clerk only.
    let image = review
        .split("class=\"draft-scan\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(fetch(&clerk, image).await.status(), StatusCode::OK);
    let mut other = signed_in(&s, "zheng.clerk", &[Role::Clerk], MARKET_BUREAU).await;
    let (status, _, _) = other.get(&draft).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(fetch(&other, image).await.status(), StatusCode::NOT_FOUND);

    // Ticking the rows alone is refused while a doubtful cell is neither corrected nor
    // confirmed: a misread must not ride into a licence on one click.
    let csrf = hidden_value(&review, "csrf").unwrap();
    let ticked: Vec<(String, String)> = (0..4)
        .map(|i| (format!("r{i}.checked"), "1".into()))
        .collect();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ticked.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (status, said, _) = clerk.post(&draft, &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{said}");
    assert!(said.contains("既未改正"), "{said}");
    // The clerk corrects every field from the paper (the draft's rows are in scan order),
    // confirms the doubtful ones that were right, and ticks each row.
    let mut form: Vec<(String, String)> = vec![("csrf".into(), csrf)];
    for (i, row) in rows.iter().enumerate() {
        for (column, value) in header.iter().zip(row) {
            if !matches!(column.as_str(), "type_code" | "scan") {
                form.push((format!("r{i}.{column}"), value.clone()));
                form.push((format!("r{i}.{column}.same"), "1".into()));
            }
        }
        form.push((format!("r{i}.checked"), "1".into()));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, said, to) = clerk.post(&draft, &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{said}");
    let job = to.unwrap();
    assert!(job.starts_with("/console/batches/"), "{job}");
    let page = ended(&mut clerk, &job).await;
    assert!(page.contains("data-figure=\"issued\">4<"), "{page}");
    // Sent, the draft is gone.
    let (status, _, _) = clerk.get(&draft).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
