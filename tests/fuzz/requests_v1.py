"""Valid requests of every flame.v1 Frontend and Backend method, for the
seed corpus (make_corpus.py) and the mutation test against a live session
manager (tests/interop/test_mutation.py). The caller generates the
modules from proto/ (protoc --python_out) and puts them on sys.path."""


def app_spec(command="/bin/true"):
    import types_pb2 as T
    return T.ApplicationSpec(shim=T.Host, description="fuzz", labels=["a"], command=command,
                             arguments=["-x"],
                             environments=[T.Environment(name="K", value="V")],
                             working_directory="/tmp", max_instances=4, delay_release=1,
                             schema=T.ApplicationSchema(input="{}", output="{}"))


def node(name="n1"):
    import types_pb2 as T
    res = T.ResourceRequirement(cpu=8, memory=16 << 30)
    return T.Node(metadata=T.Metadata(id=name, name=name), spec=T.NodeSpec(hostname=name),
                  status=T.NodeStatus(state=T.Ready, capacity=res, allocatable=res,
                                      info=T.NodeInfo(arch="x86_64", os="linux"),
                                      addresses=[T.NodeAddress(type="ip", address="127.0.0.1")]))


def session_spec(app="fz"):
    import types_pb2 as T
    return T.SessionSpec(application=app, common_data=b"cd", min_instances=0, max_instances=2,
                         batch_size=1, priority=1,
                         resreq=T.ResourceRequirement(cpu=1, memory=1 << 20))


def valid_requests(T, F, B, executor_id):
    """method name -> a valid request (executor_id: the executor they name)."""
    EXEC = executor_id
    return {
        "RegisterApplication": F.RegisterApplicationRequest(name="fz", application=app_spec()),
        "UpdateApplication": F.UpdateApplicationRequest(name="fz", application=app_spec("/bin/echo")),
        "GetApplication": F.GetApplicationRequest(name="fz"),
        "ListApplication": F.ListApplicationRequest(),
        "ListExecutor": F.ListExecutorRequest(),
        "ListNodes": F.ListNodesRequest(),
        "GetNode": F.GetNodeRequest(name="n1"),
        "CreateSession": F.CreateSessionRequest(session_id="s1", session=session_spec()),
        "OpenSession": F.OpenSessionRequest(session_id="s1", session=session_spec()),
        "GetSession": F.GetSessionRequest(session_id="s1"),
        "ListSession": F.ListSessionRequest(),
        "CreateTask": F.CreateTaskRequest(task=T.TaskSpec(session_id="s1", input=b"in")),
        "CreateTasks": F.CreateTasksRequest(session_id="s1", inputs=[b"a", b"b"]),
        "GetTask": F.GetTaskRequest(task_id="1", session_id="s1"),
        "WatchTask": F.WatchTaskRequest(task_id="1", session_id="s1"),
        "ListTask": F.ListTaskRequest(session_id="s1"),
        "WatchSession": F.WatchSessionRequest(session_id="s1", from_task_id=1),
        "RunSession": F.RunSessionRequest(session_id="s1", inputs=[b"r"], count=0),
        "CloseSession": F.CloseSessionRequest(session_id="s1"),
        "DeleteSession": F.DeleteSessionRequest(session_id="s1"),
        "UnregisterApplication": F.UnregisterApplicationRequest(name="fz"),
        "RegisterNode": B.RegisterNodeRequest(node=node()),
        "SyncNode": B.SyncNodeRequest(node=node()),
        "WatchNode": B.WatchNodeRequest(heartbeat=B.NodeHeartbeat(node_name="n1",
                                                                  status=node().status)),
        "RegisterExecutor": B.RegisterExecutorRequest(
            executor_id=EXEC, executor_spec=T.ExecutorSpec(node="n1", shim=T.Host,
                                                           resreq=T.ResourceRequirement(cpu=1))),
        "BindExecutor": B.BindExecutorRequest(executor_id=EXEC),
        "BindExecutorCompleted": B.BindExecutorCompletedRequest(executor_id=EXEC,
                                                                result=T.Result(return_code=0)),
        "LaunchTask": B.LaunchTaskRequest(executor_id=EXEC),
        "CompleteTask": B.CompleteTaskRequest(
            executor_id=EXEC, task_result=T.TaskResult(return_code=0, output=b"o", message="m")),
        "ExecutorStream": B.ExecutorUpdate(executor_id=EXEC, credit=4),
        "UnbindExecutor": B.UnbindExecutorRequest(executor_id=EXEC),
        "UnbindExecutorCompleted": B.UnbindExecutorCompletedRequest(executor_id=EXEC),
        "UnregisterExecutor": B.UnregisterExecutorRequest(executor_id=EXEC),
        "ReleaseNode": B.ReleaseNodeRequest(node_name="n1"),
    }