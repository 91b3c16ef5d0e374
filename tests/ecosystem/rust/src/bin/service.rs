//! A Flame 0.7 service with state: it remembers what OnSessionEnter gave it
//! (session id, tokens, batch size, common data) and counts the tasks of
//! the session; every output says all of it, so the client can check what
//! the executor manager passed and that the state lives across tasks.
use std::sync::Mutex;

use flame_rs::apis::{FlameError, TaskOutput};
use flame_rs::service::{FlameService, Publisher, SessionContext, TaskContext};
use flame_rs::FlameMessage;
use flame07_ecosystem::Text;

#[derive(Default)]
struct State {
    session: String,
    tokens: String,
    batch_size: u32,
    common_data: String,
    count: u64,
}

#[derive(Default)]
struct Counter {
    publisher: Publisher,
    state: Mutex<State>,
}

#[flame_rs::service::async_trait]
impl FlameService for Counter {
    fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    async fn on_session_enter(&self, ctx: SessionContext) -> Result<(), FlameError> {
        let mut tokens: Vec<String> = ctx.tokens.iter().map(|(k, v)| format!("{k}={v}")).collect();
        tokens.sort();
        let common_data = match &ctx.common_data {
            Some(b) => String::from_utf8_lossy(b).to_string(),
            None => String::new(),
        };
        *self.state.lock().unwrap() = State {
            session: ctx.session_id.clone(),
            tokens: tokens.join(","),
            batch_size: ctx.batch_size,
            common_data,
            count: 0,
        };
        // the reply then carries ExecutorAttributes too (field 2)
        self.publish([b"rs07".to_vec()])?;
        Ok(())
    }

    async fn on_task_invoke(&self, ctx: TaskContext) -> Result<Option<TaskOutput>, FlameError> {
        let input = match ctx.input {
            Some(b) => Text::decode(&b)?.0,
            None => String::new(),
        };
        if input == "fail" {
            return Err(FlameError::Internal("asked to fail".to_string()));
        }
        let mut s = self.state.lock().unwrap();
        s.count += 1;
        let out = format!("{}|{}|{}|{}|{}|{}", s.session, s.count, s.tokens, s.batch_size,
                          s.common_data, input);
        Ok(Some(Text(out).encode()?))
    }

    async fn on_session_leave(&self) -> Result<(), FlameError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    flame_rs::service::run(Counter::default()).await
}
