/* The cluster as the session manager sees it: executors and nodes
 * (Frontend calls). No state of its own: safe from any thread. */
#include "internal.h"
#include "util/util.h"

flame_status flame_executor_list(flame_executor_info ***out, size_t *count, flame_client *c)
{
    if (!out || !count || !c)
        return fl_client_bad_arg("flame_executor_list", "out, count and client are required");
    Flame__V1__ListExecutorRequest r = FLAME__V1__LIST_EXECUTOR_REQUEST__INIT;
    ProtobufCMessage *resp;
    flame_status st = fl_client_call(c, FE("ListExecutor"), &r.base,
                                     &flame__v1__executor_list__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__ExecutorList *l = (Flame__V1__ExecutorList *)resp;
    flame_executor_info **v = fl_calloc(l->n_executors + 1, sizeof *v);
    for (size_t i = 0; i < l->n_executors; i++)
        v[i] = fl_executor_info_from(l->executors[i]);
    *out = v;
    *count = l->n_executors;
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

flame_status flame_node_list(flame_node_info ***out, size_t *count, flame_client *c)
{
    if (!out || !count || !c)
        return fl_client_bad_arg("flame_node_list", "out, count and client are required");
    Flame__V1__ListNodesRequest r = FLAME__V1__LIST_NODES_REQUEST__INIT;
    ProtobufCMessage *resp;
    flame_status st = fl_client_call(c, FE("ListNodes"), &r.base,
                                     &flame__v1__node_list__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__NodeList *l = (Flame__V1__NodeList *)resp;
    flame_node_info **v = fl_calloc(l->n_nodes + 1, sizeof *v);
    for (size_t i = 0; i < l->n_nodes; i++)
        v[i] = fl_node_info_from(l->nodes[i]);
    *out = v;
    *count = l->n_nodes;
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}
