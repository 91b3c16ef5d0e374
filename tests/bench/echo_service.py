"""A flamepy 0.6 echo service (scripts/bench_start.sh): every task's output
is its input. Nothing in it knows about warm starts."""
import flamepy


class Echo(flamepy.FlameService):
    def on_session_enter(self, context: flamepy.SessionContext):
        pass

    def on_task_invoke(self, context: flamepy.TaskContext):
        return context.input

    def on_session_leave(self):
        pass


if __name__ == "__main__":
    flamepy.run(Echo())
