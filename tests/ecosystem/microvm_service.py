"""A flamepy 0.6.0 service for the microvm level (test_microvm_flamepy.py):
keeps a count across the session's tasks and answers with it, the kernel
it runs on and the session's common data, so the test sees it ran in the
guest."""
import os

import flamepy


class Where(flamepy.FlameService):
    def __init__(self):
        self.n = 0
        self.common = b""

    def on_session_enter(self, context):
        self.common = context.common_data() or b""

    def on_task_invoke(self, context):
        self.n += 1
        return (f"{self.n};{os.uname().release};{os.uname().nodename};"
                f"{self.common.decode(errors='replace')};{context.input.decode()}").encode()

    def on_session_leave(self):
        pass


flamepy.run(Where())
