"""An echo service in flamepy 0.6's shape, for scripts/bench_pysvc.sh: run
with the argument "flame" it serves through our package (`import flame as
flamepy`, the one line a user changes), else through flamepy from PyPI."""
import sys

if sys.argv[1:] == ["flame"]:
    import flame as flamepy
else:
    import flamepy


class Echo(flamepy.FlameService):
    def on_session_enter(self, context):
        pass

    def on_task_invoke(self, context):
        return context.input

    def on_session_leave(self):
        pass


if __name__ == "__main__":
    flamepy.run(Echo())
