//! Redaction through a vault: the patterns found, placeholders reused and restored, cut key
//! blocks, ordinary code left alone.

use super::patterns::PLACEHOLDER;
use super::*;

/// `n` characters of `alphabet`, spread so that they look random.
fn r(n: usize, alphabet: &str) -> String {
    let a: Vec<char> = alphabet.chars().collect();
    (0..n).map(|i| a[(i * 7 + n) % a.len()]).collect()
}
const ALNUM: &str = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xYz";
const HEX: &str = "0123456789abcdef";

/// `text` redacted by a fresh vault: what is sent, and the vault.
fn redacted(text: &str) -> (String, Vault) {
    let mut v = Vault::default();
    (v.redact(text), v)
}

#[test]
fn redaction_round_trips_and_reuses_placeholders() {
    let code = "let a = \"sk-proj-abcdefghijklmnopqrstuvwxyz012345\";\nlet b = \"sk-proj-abcdefghijklmnopqrstuvwxyz012345\";\n";
    let (r, v) = redacted(code);
    assert!(!r.contains("sk-proj"));
    let p = &v.secrets()[0].placeholder;
    assert_eq!(r.matches(p.as_str()).count(), 2);
    assert_eq!(v.restore(&r), code);
}

#[test]
fn placeholders_are_this_vaults_own_and_others_are_left_alone() {
    let key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345";
    // This project's own tests hold placeholder-like words.
    let code = format!(
        "assert!(x.contains(\"REDACTED_SECRET_1\"));\nlet k = \"{key}\";\nlet t = \"REDACTED_SECRET_ab12cd_1\";\n"
    );
    let (a, va) = redacted(&code);
    let (b, vb) = redacted(&code);
    let (pa, pb) = (&va.secrets()[0].placeholder, &vb.secrets()[0].placeholder);
    assert_ne!(pa, pb, "a random part per vault");
    assert!(
        pa.starts_with("REDACTED_SECRET_") && pa.ends_with("_1"),
        "{pa}"
    );
    assert_eq!(
        va.secrets().len(),
        1,
        "placeholder-like words are no secrets"
    );
    assert!(a.contains("\"REDACTED_SECRET_1\"") && a.contains("REDACTED_SECRET_ab12cd_1"));
    // Each restores its own only, and the words the code held stay.
    assert_eq!(va.restore(&a), code);
    assert_eq!(vb.restore(&b), code);
    assert_eq!(va.restore(&b), b);
    // A revision keeping the words the code held is fine; this vault's placeholder left
    // over, or a placeholder-like word the code did not hold, is not.
    assert!(!va.holds_placeholder(&code, &code));
    assert!(va.holds_placeholder(&format!("{code}{pa}9"), &code));
    assert!(va.holds_placeholder(&format!("{code}REDACTED_SECRET_2"), &code));
}

#[test]
fn conceal_hides_a_known_secret_and_any_long_part_of_it() {
    let key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345";
    let mut v = Vault::stable();
    let code = v.redact(&format!("let k = \"{key}\";"));
    assert_eq!(code, "let k = \"REDACTED_SECRET_1\";");
    // Whole, cut short of its prefix, half of it inside other text, in non-ASCII text.
    for (text, want) in [
        (format!("uses {key} here"), "uses REDACTED_SECRET_1 here"),
        (
            "quote: ghijklmnopqrstuv".to_owned(),
            "quote: REDACTED_SECRET_1",
        ),
        ("é«qrstuvwxyz01»é".to_owned(), "é«REDACTED_SECRET_1»é"),
    ] {
        assert_eq!(v.conceal(&text), want, "{text}");
    }
    // Fewer than MIN_FRAGMENT characters of it, and ordinary words, stay.
    for text in [
        "abcdefg",
        "let x = 1; // wxyz",
        "ordinary text with no secret",
    ] {
        assert_eq!(v.conceal(text), text);
    }
}

#[test]
fn ordinary_code_is_left_alone() {
    let code = "let key = map.get(&id);\nlet token_count = 3;\nconst PASSWORD_MIN: usize = 8;\nfn auth(user: &str) {}\nlet url = \"https://example.com/path\";\n\
        let key = compute();\nstruct S {\n    token: Token,\n    api_key: String,\n    secret_key: Option<String>,\n}\n\
        interface U { password: string; }\npassword = self.password\nkey = os.environ[\"API_KEY\"]\n\
        token = get_token()\napi_key: ${API_KEY}\npassword: *default_password\nkey_file: /etc/ssl/private/server.key\n\
        token_url: https://oauth2.googleapis.com/token\nauth_header = \"Bearer \" + token\nheaders[\"Authorization\"] = f\"Bearer {token}\"\n\
        // Bearer authentication_header_value is sent on every call\nDATABASE_URL=postgres://app:${DB_PASSWORD}@db/prod\n\
        if line.starts_with(\"-----BEGIN PRIVATE KEY-----\") { parse(lines) }\nif line == \"-----END PRIVATE KEY-----\" { break; }\n";
    let (r, v) = redacted(code);
    assert_eq!(r, code);
    assert!(v.secrets().is_empty(), "{:?}", v.secrets());
}

/// Each sample's secret part is redacted, and put back on restore.
fn assert_redacted(samples: &[(&str, String, String)]) {
    for (kind, text, secret) in samples {
        let (r, v) = redacted(text);
        assert!(!r.contains(secret.as_str()), "{kind}: {r}");
        assert!(r.contains(PLACEHOLDER), "{kind}: {r}");
        assert_eq!(&v.restore(&r), text, "{kind}");
    }
}

#[test]
fn key_formats_are_redacted() {
    let body = |n: usize| r(64, &format!("{ALNUM}+/{n}"));
    let pgp = format!(
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n{}\n{}\n=Zx9Q\n-----END PGP PRIVATE KEY BLOCK-----\n",
        body(1),
        body(2)
    );
    let gcp_body = r(64, ALNUM);
    let gcp = format!(
        "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"demo\",\n  \"private_key_id\": \"{}\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{gcp_body}\\n{}\\n-----END PRIVATE KEY-----\\n\",\n  \"client_email\": \"a@demo.iam.gserviceaccount.com\"\n}}\n",
        r(40, HEX),
        r(64, "QWERTYqwerty0123456789")
    );
    let bearer = format!("eyZ{}", r(40, ALNUM));
    let sas = r(43, ALNUM);
    let samples = [
        ("pgp private key", pgp.clone(), body(1)),
        ("gcp private key", gcp.clone(), gcp_body.clone()),
        ("gcp private key id", gcp, r(40, HEX)),
        (
            "bearer",
            format!("curl -H \"Authorization: Bearer {bearer}\" https://api.example.com\n"),
            bearer,
        ),
        (
            "azure shared access key",
            format!(
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={}=\n",
                r(43, ALNUM)
            ),
            r(43, ALNUM),
        ),
        (
            "azure sas",
            format!(
                "url = \"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&sig={sas}%3D\"\n"
            ),
            sas,
        ),
        (
            "gitlab deploy token",
            format!("glrt-{}", r(20, ALNUM)),
            format!("glrt-{}", r(20, ALNUM)),
        ),
        (
            "slack user token",
            format!("SLACK = \"xoxe-1-{}\"", r(30, ALNUM)),
            r(30, ALNUM),
        ),
        (
            "slack app token",
            format!("xapp-1-A0{}-{}", r(10, ALNUM), r(30, HEX)),
            r(30, HEX),
        ),
        (
            "stripe restricted key",
            format!("rk_live_{}", r(24, ALNUM)),
            r(24, ALNUM),
        ),
        (
            "stripe webhook secret",
            format!("WEBHOOK = \"whsec_{}\"", r(32, ALNUM)),
            r(32, ALNUM),
        ),
    ];
    assert_redacted(&samples);
}

#[test]
fn passwords_and_values_assigned_to_secret_names_are_redacted() {
    let samples = [
        (
            "redis with an empty user",
            "REDIS = \"redis://:hunter2pw@cache:6379/0\"".to_owned(),
            "hunter2pw".to_owned(),
        ),
        (
            "yaml password",
            "db:\n  user: app\n  password: hunter2secret\n".to_owned(),
            "hunter2secret".to_owned(),
        ),
        (
            "export",
            format!("export TOKEN={}\n", r(32, ALNUM)),
            r(32, ALNUM),
        ),
        (
            "dotenv",
            "DB_HOST=db\nDB_PASSWORD=s3cr3t!pass # prod\n".to_owned(),
            "s3cr3t!pass".to_owned(),
        ),
        (
            "yaml api key",
            format!("service:\n  api_key: {}\n", r(24, ALNUM)),
            r(24, ALNUM),
        ),
        (
            "numbered as the critic sees it",
            format!("    7 |   api_key: {}", r(24, ALNUM)),
            r(24, ALNUM),
        ),
    ];
    assert_redacted(&samples);
}

#[test]
fn a_key_block_cut_by_the_end_or_start_of_the_text_is_redacted() {
    let lines: Vec<String> = (0..4).map(|i| r(64, &format!("{ALNUM}{i}"))).collect();
    let tail = "-----END RSA PRIVATE KEY-----\nfn after() {}\n";
    let head = "fn before() {}\n-----BEGIN RSA PRIVATE KEY-----\n";
    // No END: from BEGIN to the end of the text.
    let cut_end = format!("{head}{}\n{}\n", lines[0], lines[1]);
    // No BEGIN: from the body (here the text's start, mid-line) to END.
    let cut_start = format!("{}\n{}\n{tail}", &lines[2][20..], lines[3]);
    // Commented, behind line numbers as prompts show code.
    let numbered = format!(
        "   10 |     # {}\n   11 |     # {}\n   12 |     # -----END RSA PRIVATE KEY-----\n   13 | x = 1",
        lines[0], lines[1]
    );
    // One-line JSON, cut at the start.
    let json = format!(
        "{}\\n{}\\n-----END PRIVATE KEY-----\\n\",\n",
        lines[2], lines[3]
    );
    for text in [&cut_end, &cut_start, &numbered, &json] {
        let (r, v) = redacted(text);
        for l in &lines {
            assert!(!r.contains(&l[30..]), "{r}");
        }
        assert!(r.contains(PLACEHOLDER), "{r}");
        assert_eq!(&v.restore(&r), text);
    }
    let (r, _) = redacted(&cut_start);
    assert!(
        r.starts_with(PLACEHOLDER) && r.ends_with("_1\nfn after() {}\n"),
        "{r}"
    );
    let (r, _) = redacted(&cut_end);
    assert!(r.starts_with("fn before() {}\n"), "{r}");
    let (r, _) = redacted(&numbered);
    assert!(r.starts_with("   10 |     # REDACTED_SECRET_") && r.ends_with("\n   13 | x = 1"));
}

#[test]
fn parts_are_redacted_as_one_text() {
    let body: Vec<String> = (0..4).map(|i| r(64, &format!("{ALNUM}{i}"))).collect();
    let before = format!(
        "x = 1\n-----BEGIN RSA PRIVATE KEY-----\n{}\n{}",
        body[0], body[1]
    );
    let selection = format!(
        "{}\n{}\n-----END RSA PRIVATE KEY-----\ny = 2",
        body[2], body[3]
    );
    let after = "z = 3";
    let mut v = Vault::default();
    let parts = v.redact_parts(&[&before, &selection, after]);
    let p = &v.secrets()[0].placeholder;
    assert_eq!(parts[0], format!("x = 1\n{p}"));
    assert_eq!(parts[1], "\ny = 2");
    assert_eq!(parts[2], after);
    let end = selection.find("\ny = 2").unwrap();
    assert_eq!(
        v.restore(&parts[0]),
        format!("{before}\n{}", &selection[..end])
    );
    assert_eq!(v.secrets().len(), 1);
    // Alone, the selection's part of the key is still found (cut at its start).
    let alone = v.redact(&selection);
    assert!(
        !alone.contains(&body[3]) && alone.ends_with("y = 2"),
        "{alone}"
    );
}
