"""A per-task Flame service on the `flame` binding for the batching tests:
keeps a counter and the ids of the tasks it saw across its session.
Inputs: b"x" counts, b"fail" raises, b"str"/b"array" return a str and a
bytearray, b"int" returns what is not an output, b"none" returns None,
b"common" the session's common data, b"seen" the ids seen so far (one per
line), b"exit" raises SystemExit."""
import flame


class Batch(flame.FlameService):
    def on_session_enter(self, ctx):
        self.count = 0
        self.seen = []
        self.common = ctx.common_data() or b""

    def on_task_invoke(self, ctx):
        self.seen.append(ctx.task_id)
        if ctx.input == b"fail":
            raise ValueError(f"task {ctx.task_id} asked to fail")
        if ctx.input == b"exit":
            raise SystemExit("asked to exit")
        if ctx.input == b"str":
            return "text"
        if ctx.input == b"array":
            return bytearray(b"arr")
        if ctx.input == b"int":
            return 7
        if ctx.input == b"none":
            return None
        if ctx.input == b"common":
            return self.common
        if ctx.input == b"seen":
            return "\n".join(self.seen).encode()
        self.count += 1
        return str(self.count).encode()


if __name__ == "__main__":
    flame.run(Batch())
