//! Flame 0.6's flmping pattern over Rust's h2 (tonic, as Flame's own
//! client): N tasks at once, each created with CreateTask and waited for
//! with its own WatchTask stream, the stream dropped as soon as the final
//! message arrives, all on one connection:
//!   flame06-watch ENDPOINT SESSION N
//! (SESSION: an open session of flmping). A server that sends a stream's
//! trailers after its last message, in a write of their own, makes h2 reset
//! each such stream itself, and after enough of them h2 ends the connection
//! (GOAWAY too_many_internal_resets): then calls fail here.
use std::time::Instant;

use futures::future::join_all;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

#[derive(Clone, PartialEq, prost::Message)]
struct TaskSpec {
    #[prost(string, tag = "2")]
    session_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CreateTaskRequest {
    #[prost(message, optional, tag = "1")]
    task: Option<TaskSpec>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Metadata {
    #[prost(string, tag = "1")]
    id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TaskStatus {
    #[prost(int32, tag = "1")]
    state: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Task {
    #[prost(message, optional, tag = "1")]
    metadata: Option<Metadata>,
    #[prost(message, optional, tag = "3")]
    status: Option<TaskStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WatchTaskRequest {
    #[prost(string, tag = "1")]
    task_id: String,
    #[prost(string, tag = "2")]
    session_id: String,
}

const SUCCEED: i32 = 2;

async fn one(ch: Channel, session: String) -> Result<(), String> {
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let req = CreateTaskRequest { task: Some(TaskSpec { session_id: session.clone() }) };
    let task: Task = grpc
        .unary(tonic::Request::new(req), PathAndQuery::from_static("/flame.v1.Frontend/CreateTask"),
               tonic_prost::ProstCodec::default())
        .await
        .map_err(|e| format!("CreateTask: {e}"))?
        .into_inner();
    let task_id = task.metadata.map(|m| m.id).unwrap_or_default();
    grpc.ready().await.map_err(|e| e.to_string())?;
    let req = WatchTaskRequest { task_id: task_id.clone(), session_id: session };
    let mut stream = grpc
        .server_streaming(tonic::Request::new(req),
                          PathAndQuery::from_static("/flame.v1.Frontend/WatchTask"),
                          tonic_prost::ProstCodec::<WatchTaskRequest, Task>::default())
        .await
        .map_err(|e| format!("WatchTask {task_id}: {e}"))?
        .into_inner();
    while let Some(t) = stream.message().await.map_err(|e| format!("WatchTask {task_id}: {e}"))? {
        let state = t.status.map(|s| s.state).unwrap_or(0);
        if state == SUCCEED {
            return Ok(()); // the stream is dropped here, before its trailers are read
        }
        if state > SUCCEED {
            return Err(format!("task {task_id} ended in state {state}"));
        }
    }
    Err(format!("WatchTask {task_id}: the stream ended before the task did"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err("usage: flame06-watch ENDPOINT SESSION N".into());
    }
    let n: usize = args[3].parse()?;
    let ch = Endpoint::from_shared(args[1].clone())?.connect().await?; // one connection
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| tokio::spawn(one(ch.clone(), args[2].clone()))).collect();
    let results = join_all(handles).await;
    let mut failed = 0;
    for r in results {
        let err = match r {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
        };
        failed += 1;
        if failed <= 5 {
            eprintln!("{err}");
        }
    }
    println!("{} of {n} tasks created and watched to the end on one connection in {:.1} s",
             n - failed, t0.elapsed().as_secs_f64());
    if failed > 0 {
        return Err(format!("{failed} of {n} calls failed").into());
    }
    Ok(())
}
