"""A Flame service written with flamepy 0.6's FlameService: keeps a counter
across the tasks of its session."""
import flamepy


class Counter(flamepy.FlameService):
    def on_session_enter(self, context: flamepy.SessionContext):
        self.count = 0
        self.common = context.common_data() or b""
        self.session_id = context.session_id
        self.application = context.application.name

    def on_task_invoke(self, context: flamepy.TaskContext):
        if context.input == b"fail":
            raise ValueError("asked to fail")
        if context.input == b"common":
            return self.common
        if context.input == b"none":
            return None
        if context.input == b"info":
            return f"{self.session_id} {self.application} {context.session_id}".encode()
        self.count += 1
        return str(self.count).encode()

    def on_session_leave(self):
        pass


if __name__ == "__main__":
    flamepy.run(Counter())
