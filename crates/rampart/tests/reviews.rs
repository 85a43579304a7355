//! ACC-7 access reviews through the binary: a campaign covers every grant that reaches a
//! target; the reviewer keeps in the web UI, the operator decides on the CLI; a campaign
//! left open past its deadline revokes the grants nobody decided; campaigns export as CSV.
//!
//! The deadline is made exact, without sleeping, by `rampart review start --days 0` (the
//! deadline is now) followed by `rampart review sweep` (what `rampart serve` runs every
//! minute).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::{cli_admin, cli_ok, enroll, start};

/// The item id on the `review show` row of `account`.
fn item_of(show: &str, account: &str) -> String {
    show.lines()
        .map(|l| l.split(['│', '┆']).map(str::trim).collect::<Vec<_>>())
        .find(|cells| cells.get(2) == Some(&account))
        .and_then(|cells| cells.get(1).map(|s| (*s).to_owned()))
        .unwrap_or_else(|| panic!("no row for {account} in\n{show}"))
}

/// The status and text of one control in the report.
fn control(r: &support::Rampart, id: &str) -> (String, String) {
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(r, &["report", "--format", "json"])).unwrap();
    let c = json["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
        .clone();
    (c["status"].as_str().unwrap().to_owned(), c.to_string())
}

fn grants(r: &support::Rampart) -> String {
    cli_ok(r, &["grant", "list"])
}

#[test]
fn a_review_left_open_past_its_deadline_revokes_the_grant() {
    let mut r = start();
    let admin = r.curl();
    let secret = enroll(&admin, &r.admin_enroll_url);
    cli_admin(
        &r,
        &secret,
        &["role", "add", "ops", "--grant", "web-* production deploy"],
    );
    for who in ["bob", "carol"] {
        cli_ok(
            &r,
            &["user", "add", who, "--email", &format!("{who}@example.com")],
        );
        cli_admin(&r, &secret, &["grant", "add", who, "ops"]);
    }

    // Grants reach a target and no review ever completed: ACC-7 fails.
    let (status, text) = control(&r, "ACC-7");
    assert_eq!(status, "fail", "{text}");
    assert!(text.contains("no campaign has completed"), "{text}");

    // A campaign with the default deadline: admin (holding access.review) reviews both.
    let first = cli_ok(&r, &["review", "start"]).trim().to_owned();
    let page = admin.get(&format!("/reviews/{first}"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<td>bob</td>"), "{}", page.body);
    assert!(page.body.contains("<td>admin</td>"), "{}", page.body);
    let show = cli_ok(&r, &["review", "show", &first]);
    let bob = item_of(&show, "bob");
    let kept = admin.post(
        &format!("/reviews/items/{bob}"),
        &[
            ("decision", "keep"),
            ("reason", "on call; ask alice@example.com"),
        ],
    );
    assert_eq!(kept.status, 303, "{}", kept.body);
    let again = admin.post(
        &format!("/reviews/items/{bob}"),
        &[("decision", "revoke"), ("reason", "changed my mind")],
    );
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("already decided"), "{}", again.body);
    let carol = item_of(&show, "carol");
    assert_eq!(
        cli_ok(
            &r,
            &["review", "decide", &carol, "keep", "--reason", "needed"]
        )
        .trim(),
        "kept"
    );
    let csv = admin.get(&format!("/reviews/{first}.csv"));
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(
        csv.body.starts_with("campaign,started,deadline"),
        "{}",
        csv.body
    );
    // The reason was scrubbed before it was stored.
    assert!(!csv.body.contains("alice@example.com"), "{}", csv.body);
    assert!(csv.body.contains("[EMAIL]"), "{}", csv.body);

    // A campaign whose deadline is now: nobody decides, the sweep revokes both grants.
    let second = cli_ok(&r, &["review", "start", "--days", "0"])
        .trim()
        .to_owned();
    assert!(grants(&r).contains("bob"), "{}", grants(&r));
    let late = admin.post(
        &format!(
            "/reviews/items/{}",
            item_of(&cli_ok(&r, &["review", "show", &second]), "bob")
        ),
        &[("decision", "keep"), ("reason", "too late")],
    );
    assert_eq!(late.status, 400, "{}", late.body);
    assert!(late.body.contains("closed"), "{}", late.body);
    assert_eq!(
        cli_ok(&r, &["review", "sweep"]).trim(),
        "2 open items decided at their deadline"
    );
    let left = grants(&r);
    assert!(!left.contains("bob") && !left.contains("carol"), "{left}");
    let out = cli_ok(&r, &["review", "export", &second, "--csv"]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    for row in rows {
        assert!(row.contains(",closed,"), "{row}");
        assert!(row.contains(",revoke,missed review,system,"), "{row}");
    }
    let audit = cli_ok(&r, &["audit", "search", "--action", "review", "--json"]);
    assert!(audit.contains("review.close"), "{audit}");
    assert!(audit.contains("missed review"), "{audit}");
    let removed = cli_ok(
        &r,
        &["audit", "search", "--action", "grant.remove", "--json"],
    );
    assert_eq!(removed.lines().count(), 2, "{removed}");
    let list = cli_ok(&r, &["review", "list"]);
    assert!(list.contains(&first) && list.contains(&second), "{list}");
    assert!(admin.get("/reviews").body.contains(&second));

    // The report: a review completed now (ACC-7 passes, with its counts); a grant made 40
    // days ago and never used is a candidate for removal (ACC-3 fails and names it).
    let (status, text) = control(&r, "ACC-7");
    assert_eq!(status, "pass", "{text}");
    assert!(text.contains("2 revoked for a missed review"), "{text}");
    let (status, text) = control(&r, "ACC-3");
    assert_eq!(status, "pass", "{text}");
    cli_ok(&r, &["user", "add", "dave", "--email", "dave@example.com"]);
    cli_admin(&r, &secret, &["grant", "add", "dave", "ops"]);
    r.stop();
    support::sqlite(
        &r.data_dir().join("rampart.db"),
        "UPDATE bindings SET created_us = created_us - 3456000000000 WHERE account = 'dave';",
    );
    let (status, text) = control(&r, "ACC-3");
    assert_eq!(status, "fail", "{text}");
    assert!(text.contains("dave (ops, last used never)"), "{text}");
}
