"""A bare grpcio echo service with flamepy 0.6's server setup (a sync
grpc.server with a ThreadPoolExecutor of 10 workers, flamepy's own
generated stubs) but none of flamepy's per-call work (contexts, logging):
for scripts/bench_pysvc.sh, to tell grpcio's server cost from flamepy's.
Per task only (OnTaskInvokeBatch is UNIMPLEMENTED, as in flamepy)."""
import os
from concurrent import futures

import grpc
from flamepy.proto import shim_pb2_grpc, types_pb2


class Echo(shim_pb2_grpc.InstanceServicer):
    def OnSessionEnter(self, request, context):
        return types_pb2.Result(return_code=0)

    def OnTaskInvoke(self, request, context):
        return types_pb2.TaskResult(return_code=0, output=request.input)

    def OnSessionLeave(self, request, context):
        return types_pb2.Result(return_code=0)


if __name__ == "__main__":
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    shim_pb2_grpc.add_InstanceServicer_to_server(Echo(), server)
    server.add_insecure_port("unix://" + os.environ["FLAME_INSTANCE_ENDPOINT"])
    server.start()
    server.wait_for_termination()
