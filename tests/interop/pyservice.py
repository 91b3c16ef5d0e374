"""A Flame service written against the Instance protocol alone: Debian's
python3-grpcio with stubs generated from our shim.proto, not our library.

Inputs: b"count" (state kept across the session's tasks), b"fail:MSG",
b"crash", b"pid", b"common", b"sleep:MS", b"spawn:MS" (submits b"sleep:MS"
to its own session through FLAME_ENDPOINT and waits for it), b"mark:PATH:TAG:..."
(appends TAG to the file PATH: proof that the task ran), b"wait:PATH" (runs
until the file PATH exists, at most 60 s). Common data
b"refuse" makes OnSessionEnter fail.
"""
import os
import sys
import time
from concurrent import futures

import grpc
import shim_pb2
import shim_pb2_grpc
import types_pb2


class Service(shim_pb2_grpc.InstanceServicer):
    def __init__(self):
        self.count = 0
        self.common = b""

    def OnSessionEnter(self, request, context):
        self.common = request.common_data
        if request.common_data == b"refuse":
            return types_pb2.Result(return_code=1, message="refused by service")
        return types_pb2.Result(return_code=0)

    def OnTaskInvoke(self, request, context):
        data = request.input
        if data == b"count":
            self.count += 1
            return types_pb2.TaskResult(return_code=0, output=str(self.count).encode())
        if data.startswith(b"fail:"):
            return types_pb2.TaskResult(return_code=1, message=data[5:].decode())
        if data == b"crash":
            os._exit(3)
        if data == b"pid":
            return types_pb2.TaskResult(return_code=0, output=str(os.getpid()).encode())
        if data == b"common":
            return types_pb2.TaskResult(return_code=0, output=self.common)
        if data.startswith(b"spawn:"):
            return self.spawn(request.session_id, b"sleep:" + data[6:])
        if data.startswith(b"mark:"):
            path, tag = data.split(b":")[1:3]
            with open(path, "ab") as f:
                f.write(tag + b"\n")
            return types_pb2.TaskResult(return_code=0, output=tag)
        if data.startswith(b"wait:"):
            path, deadline = data[5:].decode(), time.time() + 60
            while not os.path.exists(path) and time.time() < deadline:
                time.sleep(0.02)
            return types_pb2.TaskResult(return_code=0, output=b"waited")
        if data.startswith(b"sleep:"):
            time.sleep(int(data[6:]) / 1000.0)
            return types_pb2.TaskResult(return_code=0, output=b"slept")
        return types_pb2.TaskResult(return_code=0, output=data)

    def spawn(self, session_id, data):
        """A task that runs a task of its own session and waits for it."""
        import frontend_pb2
        import frontend_pb2_grpc
        endpoint = os.environ["FLAME_ENDPOINT"]
        target = endpoint.split("://", 1)[-1]
        if endpoint.startswith("https://"):
            # FLAME_CA_FILE comes from the executor manager; a certificate,
            # when the application's environment names one
            def read(var):
                path = os.environ.get(var)
                return open(path, "rb").read() if path else None
            creds = grpc.ssl_channel_credentials(read("FLAME_CA_FILE"), read("FLAME_KEY_FILE"),
                                                 read("FLAME_CERT_FILE"))
            ch = grpc.secure_channel(target, creds)
        else:
            ch = grpc.insecure_channel(target)
        with ch:
            fe = frontend_pb2_grpc.FrontendStub(ch)
            t = fe.CreateTask(frontend_pb2.CreateTaskRequest(
                task=types_pb2.TaskSpec(session_id=session_id, input=data)))
            last = None
            for last in fe.WatchTask(frontend_pb2.WatchTaskRequest(
                    session_id=session_id, task_id=t.metadata.id), timeout=60):
                pass
        return types_pb2.TaskResult(return_code=0, output=b"child:" + last.spec.output)

    def OnSessionLeave(self, request, context):
        return types_pb2.Result(return_code=0)


def main():
    path = os.environ["FLAME_INSTANCE_ENDPOINT"]
    assert os.environ.get("FLAME_EXECUTOR_ID"), "FLAME_EXECUTOR_ID is not set"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    shim_pb2_grpc.add_InstanceServicer_to_server(Service(), server)
    server.add_insecure_port("unix:" + path)
    server.start()
    print("pyservice listening on", path, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
