//! A Flame 0.7 client (flame-rs 0.7.0) against a cluster of ours:
//!   flame07-client ENDPOINT SERVICE_BINARY TASKS
//! registers SERVICE_BINARY as application rs07-counter, then checks the
//! calls of Flame 0.7: many tasks of the built-in flmping run and waited
//! for through WatchTasks, the plural list calls (with a filter), a
//! session's tokens, batch size and common data reaching a 0.7 service
//! (wrapped replies), its state across tasks, a failed task, and
//! SuspendSession/ResumeSession. Prints one line per step; exits non-zero
//! (with the reason) on the first failure.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flame_rs::apis::{FlameError, SessionState, TaskState};
use flame_rs::client::{ApplicationAttributes, Connection, Session, SessionAttributes, SessionFilter};
use futures::future::join_all;
use futures::{stream, StreamExt};
use flame07_ecosystem::Text;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn check(ok: bool, what: String) -> Res<()> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn attrs(id: &str, app: &str) -> SessionAttributes {
    SessionAttributes {
        id: id.to_string(),
        application: app.to_string(),
        common_data: None,
        tokens: HashMap::new(),
        min_instances: 0,
        max_instances: None,
        batch_size: 1,
        priority: 0,
        resreq: None,
    }
}

/// The values, and the errors as text.
fn split<T>(v: Vec<Result<T, FlameError>>) -> (Vec<T>, Vec<String>) {
    let mut ok = Vec::new();
    let mut err = Vec::new();
    for r in v {
        match r {
            Ok(x) => ok.push(x),
            Err(e) => err.push(e.to_string()),
        }
    }
    (ok, err)
}

/// "<count> x <error>" for each distinct error: every cause shows.
fn tally(errors: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for e in errors {
        match counts.iter_mut().find(|(x, _)| x == e) {
            Some((_, c)) => *c += 1,
            None => counts.push((e.clone(), 1)),
        }
    }
    counts.iter().map(|(e, c)| format!("{c} x {e}")).collect::<Vec<_>>().join("; ")
}

async fn wait_state(conn: &Connection, id: &str, want: SessionState) -> Res<Session> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = conn.get_session(&id.to_string()).await?;
        if s.state == want {
            return Ok(s);
        }
        check(Instant::now() < deadline,
              format!("session {id} is still {:?}, not {:?}, after 120 s", s.state, want))?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn many(conn: &Connection, n: usize) -> Res<()> {
    let ssn = conn.create_session(&attrs("rs07-many", "flmping")).await?;
    let t0 = Instant::now();
    // create in parallel (a bounded number in flight); each run() registers
    // its task on the session's one WatchTasks stream
    let created: Vec<_> = stream::iter(0..n)
        .map(|_| ssn.run::<(), ()>(()))
        .buffer_unordered(256)
        .collect()
        .await;
    let (futures, errors) = split(created);
    check(errors.is_empty(), format!("creating {n} tasks: {}", tally(&errors)))?;
    let create_time = t0.elapsed();
    let (results, errors) = split(join_all(futures).await);
    check(errors.is_empty(), format!("waiting for {n} tasks: {}", tally(&errors)))?;
    let ok = results.iter().filter(|r| r.is_succeed()).count();
    check(ok == n, format!("{ok} of {n} flmping tasks succeeded"))?;
    println!("ok - {n} tasks run through WatchTasks (created in {:.1} s, all done in {:.1} s)",
             create_time.as_secs_f64(), t0.elapsed().as_secs_f64());

    let tasks = ssn.list_tasks().await?;
    check(tasks.len() == n, format!("ListTasks gave {} tasks, not {n}", tasks.len()))?;
    check(tasks.iter().all(|t| t.state == TaskState::Succeed), "a listed task is not Succeed".into())?;
    let listed = conn.list_sessions().await?;
    let me = listed.iter().find(|s| s.id == "rs07-many");
    check(me.map(|s| s.succeed as usize) == Some(n),
          format!("ListSessions: rs07-many has {:?} succeeded tasks", me.map(|s| s.succeed)))?;
    println!("ok - ListTasks and ListSessions");
    ssn.close().await?;
    Ok(())
}

async fn stateful(conn: &Connection, service: &str) -> Res<()> {
    conn.register_application("rs07-counter".to_string(), ApplicationAttributes {
        shim: None,
        image: None,
        description: Some("flame-rs 0.7.0 service".to_string()),
        labels: vec![],
        command: Some(service.to_string()),
        arguments: vec![],
        environments: HashMap::new(),
        working_directory: None,
        max_instances: Some(1),
        delay_release: None,
        schema: None,
        url: None,
        installer: None,
    }).await?;
    let apps = conn.list_applications().await?;
    for name in ["rs07-counter", "flmping", "flmexec", "flmrun"] {
        if name.starts_with("flm") && name != "flmping" {
            continue; // other built-ins are another branch's
        }
        check(apps.iter().any(|a| a.name == name), format!("ListApplications lacks {name}"))?;
    }
    println!("ok - RegisterApplication and ListApplications");

    let mut a = attrs("rs07-state", "rs07-counter");
    a.tokens.insert("svc".to_string(), "secret".to_string());
    a.tokens.insert("db".to_string(), "pw".to_string());
    a.common_data = Some(Bytes::from("cd"));
    a.max_instances = Some(1);
    a.min_instances = 1; // one executor stays bound: the state lives across tasks
    let ssn = conn.create_session(&a).await?;
    let expect = |count: u64, input: &str| format!("rs07-state|{count}|db=pw,svc=secret|1|cd|{input}");
    for (i, input) in ["a", "b", "c"].iter().enumerate() {
        let out: Option<Text> = ssn.invoke(&Text(input.to_string())).await?.await?;
        let want = expect(i as u64 + 1, input);
        check(out == Some(Text(want.clone())), format!("task {input}: {out:?}, not {want}"))?;
    }
    println!("ok - a 0.7 service: session enter (tokens, batch size, common data) and state across tasks");

    let failed = ssn.run::<&Text, Text>(&Text("fail".to_string())).await?.await?;
    check(failed.state == TaskState::Failed, format!("a failing task is {:?}", failed.state))?;
    check(failed.error_message.as_deref().unwrap_or("").contains("asked to fail"),
          format!("the failed task's message: {:?}", failed.error_message))?;
    println!("ok - a task the service fails is Failed with its message");

    let s = ssn.suspend().await?;
    check(s.state == SessionState::Suspending || s.state == SessionState::Suspended,
          format!("SuspendSession answered {:?}", s.state))?;
    wait_state(conn, "rs07-state", SessionState::Suspended).await?;
    let filter = SessionFilter { state: Some(SessionState::Suspended), ..Default::default() };
    let suspended = conn.list_sessions_with(&filter).await?;
    check(suspended.iter().map(|s| s.id.as_str()).collect::<Vec<_>>() == vec!["rs07-state"],
          "ListSessions filtered on Suspended".into())?;
    println!("ok - SuspendSession: Suspended once its executor is gone; ListSessions filter");

    let fut = ssn.run::<&Text, Text>(&Text("d".to_string())).await?;
    let id = fut.id().clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = ssn.get_task(&id).await?;
    check(t.state == TaskState::Pending, format!("a task of a suspended session is {:?}", t.state))?;
    let s = ssn.resume().await?;
    check(s.state == SessionState::Open, format!("ResumeSession answered {:?}", s.state))?;
    let r = fut.await?;
    // the executor left with the suspension: the service entered the session anew
    check(r.output == Some(Text(expect(1, "d"))), format!("after resume: {:?}", r.output))?;
    println!("ok - a task waits while suspended and runs after ResumeSession");

    let execs = conn.list_executors().await?;
    check(execs.iter().any(|e| e.application == "rs07-counter"),
          "ListExecutors: no executor of rs07-counter (ExecutorSpec.application)".into())?;
    println!("ok - ListExecutors");
    ssn.close().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err("usage: flame07-client ENDPOINT SERVICE_BINARY TASKS".into());
    }
    let n: usize = args[3].parse()?;
    let conn = flame_rs::client::connect(&args[1]).await.map_err(|e: FlameError| e.to_string())?;
    stateful(&conn, &args[2]).await?;
    many(&conn, n).await?;
    println!("flame07-client: all checks passed");
    Ok(())
}
