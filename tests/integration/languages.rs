//! Chinese wherever a clerk reads (issue #15 item 3): the API keeps its English codes and, for a
//! client whose `Accept-Language` prefers Chinese, says the message and every field's reason in
//! Chinese from the one message catalogue; English stays the default.

use elicence::app::Role;

use crate::common::*;

#[tokio::test]
async fn a_refused_record_is_explained_in_chinese_to_a_client_that_asks_and_in_english_otherwise() {
    let server = TestServer::start().await;
    let token = server.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let mut record = sample(&server.t.app, FOOD, "LANG-1");
    record.valid_until = Some("2020-02-30".into());
    record.holder.id = "91350100M000100Y4X".into();
    let send = |lang: Option<&'static str>| {
        let mut request = server
            .client
            .post(server.url("/api/v1/licences"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"type_code": FOOD, "record": record}));
        if let Some(lang) = lang {
            request = request.header("accept-language", lang);
        }
        request.send()
    };

    let answer = send(Some("zh-CN,zh;q=0.9,en;q=0.5")).await.unwrap();
    assert_eq!(answer.status(), 422);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "invalid_record",
        "the code stays English"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("记录有误"), "{message}");
    let reasons: Vec<(&str, &str)> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["field"].as_str().unwrap(), f["reason"].as_str().unwrap()))
        .collect();
    let holder = reasons.iter().find(|(f, _)| *f == "holder.id").unwrap().1;
    assert!(
        holder.starts_with("本证照的持证人是单位，应填统一社会信用代码：")
            && holder.contains("校验位"),
        "{holder}"
    );
    assert!(
        reasons
            .iter()
            .any(|(f, r)| *f == "valid_until" && r.contains("不是日期")),
        "{reasons:?}"
    );

    for lang in [None, Some("en-GB"), Some("fr")] {
        let body: serde_json::Value = send(lang).await.unwrap().json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("invalid record"), "{lang:?}: {message}");
        assert!(
            body["error"]["fields"][0]["reason"]
                .as_str()
                .unwrap()
                .is_ascii(),
            "{lang:?}: {body}"
        );
    }
}

#[tokio::test]
async fn refusals_before_any_handler_are_in_chinese_too() {
    let server = TestServer::start().await;
    let answer = server
        .client
        .get(server.url("/api/v1/audit"))
        .header("accept-language", "zh")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("请先登录"),
        "{body}"
    );
    let answer = server
        .client
        .get(server.url("/api/v1/nothing-here"))
        .header("accept-language", "zh-TW")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["message"], "没有这个地址。");
}

#[tokio::test]
async fn a_batch_whose_manifest_cannot_be_read_says_why_in_both_languages() {
    let server = TestServer::start().await;
    let token = server.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let folder = server.t.dir.path().join("bad-header");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("manifest.csv"),
        "type_code,number,holder_name,holder_id,valid_from,valid_until,scan,no_such_column\n",
    )
    .unwrap();
    let zip = crate::uploads::zip_folder(&folder);
    let queued: serde_json::Value = server
        .client
        .post(server.url("/api/v1/batches"))
        .bearer_auth(&token)
        .header("content-type", "application/zip")
        .body(zip)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = queued["batch"]["id"].as_str().unwrap().to_string();
    let mut job = serde_json::Value::Null;
    for _ in 0..200 {
        job = server
            .get_json(&format!("/api/v1/batches/{id}"), Some(&token))
            .await;
        if job["batch"]["state"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(job["batch"]["state"], "failed", "{job}");
    let error = job["batch"]["error"].as_str().unwrap();
    let chinese = job["batch"]["error_zh"].as_str().unwrap();
    assert!(
        error.contains("\"no_such_column\" is not a field"),
        "{error}"
    );
    assert_eq!(
        chinese,
        "清单第 1 行：表头中的“no_such_column”列不是证照目录中任何证照类型的登记项"
    );
}
