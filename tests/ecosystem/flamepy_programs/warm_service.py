"""A flamepy 0.6 service for the warm-start test (test_warm.py): answers each
task with a token of its process, how many sessions the process has entered,
the session it is in and its FLAME_EXECUTOR_ID. Nothing in it knows about warm starts."""
import os
import uuid

import flamepy

TOKEN = uuid.uuid4().hex  # one per process


class Warm(flamepy.FlameService):
    def __init__(self):
        self.enters = 0
        self.session_id = None

    def on_session_enter(self, context: flamepy.SessionContext):
        self.enters += 1
        self.session_id = context.session_id

    def on_task_invoke(self, context: flamepy.TaskContext):
        if context.input == b"exit":
            os._exit(3)
        return f"{TOKEN} {self.enters} {self.session_id} {os.environ['FLAME_EXECUTOR_ID']}".encode()

    def on_session_leave(self):
        pass


if __name__ == "__main__":
    flamepy.run(Warm())
