/* ckpt/onnx.c: the ONNX model of a checkpoint's inference network (see
 * ckpt/onnx.h), encoded with the small protobuf writer of protobuf.c.
 *
 * Walks the model's ops in forward order (model_op_info) and writes one ONNX
 * node per op: Conv (+ Relu), MaxPool (ceil_mode 1: Caffe's rounding up),
 * LRN, AveragePool, Gemm (+ Relu, after a Flatten of a 4-D input), and a
 * Concat wherever an op reads a tensor that inception branches wrote as channel
 * slices; dropout is the identity at inference and emits nothing. An op whose
 * arithmetic ONNX cannot state exactly (adaptive pooling, a pool whose
 * rounding differs from ONNX's formula) is refused, never approximated.
 */
#include "trainer/ckpt/onnx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataloader/image.h"
#include "trainer/ckpt/ckpt.h"
#include "trainer/ckpt/internal.h"

/* Field numbers of onnx/onnx.proto (IR version 7), the few this file writes. */
enum {
    MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3, MODEL_DOC = 6, MODEL_GRAPH = 7,
    MODEL_OPSET = 8, MODEL_METADATA = 14,
    OPSET_DOMAIN = 1, OPSET_VERSION = 2,
    ENTRY_KEY = 1, ENTRY_VALUE = 2,
    GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_DOC = 10, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12,
    GRAPH_VALUE_INFO = 13,
    NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5,
    ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_INTS = 8, ATTR_TYPE = 20,
    ATTR_TYPE_FLOAT = 1, ATTR_TYPE_INT = 2, ATTR_TYPE_INTS = 7,
    TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9,
    ELEM_FLOAT = 1,
    VALUE_NAME = 1, VALUE_TYPE = 2,
    TYPE_TENSOR = 1, TTENSOR_ELEM = 1, TTENSOR_SHAPE = 2,
    SHAPE_DIM = 1, DIM_VALUE = 1, DIM_PARAM = 2,
};

#define VALUE_LEN 96

typedef struct {
    const Model *m;
    PbBuf *b;
    int nt;
    char (*val)[VALUE_LEN]; /* (nt) the ONNX value holding each tensor; "" until computed */
    unsigned char *flat;    /* (nt) 1: the value is [N, C]; 0: [N, C, H, W] */
    char *err;
    size_t errlen;
} OnnxGraph;

/* ---- the messages ---- */

static void attr_int(PbBuf *b, const char *name, int64_t v)
{
    size_t a = pb_begin(b, NODE_ATTRIBUTE);
    pb_string(b, ATTR_NAME, name);
    pb_varint(b, ATTR_TYPE, ATTR_TYPE_INT);
    pb_varint(b, ATTR_I, v);
    pb_end(b, a);
}

static void attr_float(PbBuf *b, const char *name, float v)
{
    size_t a = pb_begin(b, NODE_ATTRIBUTE);
    pb_string(b, ATTR_NAME, name);
    pb_varint(b, ATTR_TYPE, ATTR_TYPE_FLOAT);
    pb_float(b, ATTR_F, v);
    pb_end(b, a);
}

/* A list of n copies of v ([k, k], [s, s], [p, p, p, p]). */
static void attr_ints(PbBuf *b, const char *name, int64_t v, int n)
{
    size_t a = pb_begin(b, NODE_ATTRIBUTE);
    pb_string(b, ATTR_NAME, name);
    pb_varint(b, ATTR_TYPE, ATTR_TYPE_INTS);
    for (int i = 0; i < n; i++) pb_varint(b, ATTR_INTS, v);
    pb_end(b, a);
}

/* Opens a NodeProto; the caller adds attributes and closes it with pb_end. */
static size_t node_begin(PbBuf *b, const char *op_type, const char *name, const char *const *in, int nin,
                         const char *out)
{
    size_t n = pb_begin(b, GRAPH_NODE);
    for (int i = 0; i < nin; i++) pb_string(b, NODE_INPUT, in[i]);
    pb_string(b, NODE_OUTPUT, out);
    pb_string(b, NODE_NAME, name);
    pb_string(b, NODE_OP_TYPE, op_type);
    return n;
}

static void node1(PbBuf *b, const char *op_type, const char *name, const char *in, const char *out)
{
    pb_end(b, node_begin(b, op_type, name, &in, 1, out));
}

/* A float32 initializer of shape dims[0..ndim). */
static void initializer(PbBuf *b, const char *name, const int *dims, int ndim, const float *data)
{
    size_t t = pb_begin(b, GRAPH_INITIALIZER), count = 1;
    for (int d = 0; d < ndim; d++) {
        pb_varint(b, TENSOR_DIMS, dims[d]);
        count *= (size_t)dims[d];
    }
    pb_varint(b, TENSOR_DATA_TYPE, ELEM_FLOAT);
    pb_string(b, TENSOR_NAME, name);
    pb_bytes(b, TENSOR_RAW_DATA, data, count * sizeof(float));
    pb_end(b, t);
}

/* A ValueInfoProto (graph input, output or intermediate value): float32
 * [N, dims...] with N dynamic. */
static void value_info(PbBuf *b, int field, const char *name, const int *dims, int ndim)
{
    size_t v = pb_begin(b, field);
    pb_string(b, VALUE_NAME, name);
    size_t ty = pb_begin(b, VALUE_TYPE), tt = pb_begin(b, TYPE_TENSOR);
    pb_varint(b, TTENSOR_ELEM, ELEM_FLOAT);
    size_t sh = pb_begin(b, TTENSOR_SHAPE), d = pb_begin(b, SHAPE_DIM);
    pb_string(b, DIM_PARAM, "N");
    pb_end(b, d);
    for (int i = 0; i < ndim; i++) {
        d = pb_begin(b, SHAPE_DIM);
        pb_varint(b, DIM_VALUE, dims[i]);
        pb_end(b, d);
    }
    pb_end(b, sh);
    pb_end(b, tt);
    pb_end(b, ty);
    pb_end(b, v);
}

/* ---- the graph ---- */

/* Tensor t is held by the value named v (v may be another tensor's name). */
static void value_alias(OnnxGraph *g, int t, const char *v)
{
    size_t len = strlen(v) < VALUE_LEN - 1 ? strlen(v) : VALUE_LEN - 1;
    memmove(g->val[t], v, len);
    g->val[t][len] = 0;
}

static int by_offset(const void *a, const void *b) { return ((const int *)a)[1] - ((const int *)b)[1]; }

/* The value of tensor t, emitting the Concat of its channel slices when it is
 * a concatenation not read before. NULL (err set) when t was never computed. */
static const char *graph_value(OnnxGraph *g, int t)
{
    if (g->val[t][0]) return g->val[t];
    int (*kids)[2] = malloc(sizeof *kids * (size_t)g->nt), nk = 0, c, h, w;
    const char **in = malloc(sizeof *in * (size_t)g->nt);
    if (!kids || !in) {
        free(kids);
        free(in);
        g->b->oom = 1;
        return NULL;
    }
    for (int i = 0; i < g->nt; i++) {
        int off;
        if (model_tensor_parent(g->m, i, &off) == t) kids[nk][0] = i, kids[nk][1] = off, nk++;
    }
    qsort(kids, (size_t)nk, sizeof *kids, by_offset);
    const char *name = model_tensor_info(g->m, t, &c, &h, &w);
    int ok = nk > 0;
    for (int k = 0; k < nk && ok; k++) ok = (in[k] = g->val[kids[k][0]])[0] != 0;
    if (ok) {
        snprintf(g->val[t], VALUE_LEN, "%s", name);
        size_t n = node_begin(g->b, "Concat", name, in, nk, name);
        attr_int(g->b, "axis", 1);
        pb_end(g->b, n);
    } else {
        snprintf(g->err, g->errlen, "the graph reads %s before it is computed", name);
    }
    free(kids);
    free(in);
    return ok ? g->val[t] : NULL;
}

/* Conv or Gemm with its weight and bias, then ReLU when the op has one. */
static void emit_linear(OnnxGraph *g, const ModelOpInfo *o, const char *x, int gemm)
{
    int np;
    const ParamTensor *pt = model_param_tensors(g->m, &np);
    char pre[VALUE_LEN], relu[VALUE_LEN];
    snprintf(pre, sizeof pre, "%s/preact", o->name);
    const char *in[3] = {x, pt[o->weight].name, pt[o->bias].name};
    const char *out = g->val[o->out];
    size_t n = node_begin(g->b, gemm ? "Gemm" : "Conv", o->name, in, 3, o->relu ? pre : out);
    if (gemm) {
        attr_int(g->b, "transB", 1); /* W is (out, in) */
    } else {
        attr_ints(g->b, "kernel_shape", o->conv.k, 2);
        attr_ints(g->b, "strides", o->conv.stride, 2);
        attr_ints(g->b, "pads", o->conv.pad, 4);
    }
    pb_end(g->b, n);
    snprintf(relu, sizeof relu, "%s/relu", o->name);
    if (o->relu) node1(g->b, "Relu", relu, pre, out);
}

/* MaxPool / AveragePool, when ONNX computes exactly what nn/pool.c does. */
static int emit_pool(OnnxGraph *g, const ModelOpInfo *o, const char *x)
{
    const PoolShape *s = &o->pool;
    int max = o->kind == OP_MAXPOOL;
    /* ONNX with ceil_mode 1: ceil((h + 2 pad - k) / stride) + 1; nn/pool.c also
     * drops a last window that would start in the padding */
    int onnx_h = (s->h + 2 * s->pad - s->k + s->stride - 1) / s->stride + 1;
    int onnx_w = (s->w + 2 * s->pad - s->k + s->stride - 1) / s->stride + 1;
    /* averages: no padding and windows that tile exactly, so that neither
     * Caffe's divisor rule nor the rounding can differ */
    int exact_avg = !s->adaptive && s->pad == 0 && (s->h - s->k) % s->stride == 0 && (s->w - s->k) % s->stride == 0;
    if (s->adaptive || onnx_h != s->ho || onnx_w != s->wo || (!max && !exact_avg))
        return snprintf(g->err, g->errlen, "%s (%s %dx%d/%d pad %d on %dx%d) has no exact ONNX pooling", o->name,
                        max ? "max" : s->adaptive ? "adaptive average" : "average", s->k, s->k, s->stride, s->pad,
                        s->h, s->w), -1;
    size_t n = node_begin(g->b, max ? "MaxPool" : "AveragePool", o->name, &x, 1, g->val[o->out]);
    attr_ints(g->b, "kernel_shape", s->k, 2);
    attr_ints(g->b, "strides", s->stride, 2);
    attr_ints(g->b, "pads", s->pad, 4);
    attr_int(g->b, "ceil_mode", max);
    pb_end(g->b, n);
    return 0;
}

/* One op of the main path. */
static int emit_op(OnnxGraph *g, const ModelOpInfo *o)
{
    const char *x = graph_value(g, o->in);
    if (!x) return -1;
    if (o->out >= 0 && !g->val[o->out][0]) {
        int c, h, w;
        snprintf(g->val[o->out], VALUE_LEN, "%s", model_tensor_info(g->m, o->out, &c, &h, &w));
    }
    char name[VALUE_LEN];
    switch (o->kind) {
    case OP_CONV:
        emit_linear(g, o, x, 0);
        return 0;
    case OP_MAXPOOL:
    case OP_AVGPOOL:
        return emit_pool(g, o, x);
    case OP_LRN: {
        if (o->lrn.size % 2 == 0) /* ONNX's window is asymmetric for even sizes, Caffe's is not */
            return snprintf(g->err, g->errlen, "%s: LRN of even size %d has no exact ONNX form", o->name, o->lrn.size), -1;
        size_t n = node_begin(g->b, "LRN", o->name, &x, 1, g->val[o->out]);
        attr_int(g->b, "size", o->lrn.size);
        attr_float(g->b, "alpha", o->lrn.alpha); /* both divide alpha by size */
        attr_float(g->b, "beta", o->lrn.beta);
        attr_float(g->b, "bias", o->lrn.k);
        pb_end(g->b, n);
        return 0;
    }
    case OP_DROPOUT: /* the identity at inference */
        value_alias(g, o->out, x);
        g->flat[o->out] = g->flat[o->in];
        return 0;
    case OP_FLATTEN:
    case OP_FC:
        if (!g->flat[o->in]) { /* Gemm takes [N, C]; (C, H, W) flattens in that order, as nn/fc.c does */
            const char *v = o->kind == OP_FLATTEN ? g->val[o->out] : name;
            snprintf(name, sizeof name, "%s/flatten", o->name);
            size_t n = node_begin(g->b, "Flatten", name, &x, 1, v);
            attr_int(g->b, "axis", 1);
            pb_end(g->b, n);
            x = v;
        }
        if (o->kind == OP_FC) emit_linear(g, o, x, 1);
        else if (g->flat[o->in]) value_alias(g, o->out, x);
        g->flat[o->out] = 1;
        return 0;
    case OP_LOSS: {
        size_t n = node_begin(g->b, "Softmax", "prob", &x, 1, "prob");
        attr_int(g->b, "axis", 1);
        pb_end(g->b, n);
        return 0;
    }
    case OP_KINDS:
        break;
    }
    return snprintf(g->err, g->errlen, "%s: no ONNX form for this op", o->name), -1;
}

/* Sub and Div: data = (input - mean) / std. */
static void emit_normalise(OnnxGraph *g, const OnnxModelInfo *info)
{
    static const int dims[4] = {1, 3, 1, 1};
    initializer(g->b, "input_mean", dims, 4, info->mean);
    initializer(g->b, "input_std", dims, 4, info->std);
    const char *sub[2] = {"input", "input_mean"}, *div[2] = {"input_centred", "input_std"};
    pb_end(g->b, node_begin(g->b, "Sub", "input_centred", sub, 2, "input_centred"));
    pb_end(g->b, node_begin(g->b, "Div", "data", div, 2, g->val[0]));
}

static int graph_write(OnnxGraph *g, const float *params, const OnnxModelInfo *info)
{
    PbBuf *b = g->b;
    int c, h, w, nops = model_num_ops(g->m), np, classes = model_config(g->m)->classes;
    const ParamTensor *pt = model_param_tensors(g->m, &np);
    pb_string(b, GRAPH_NAME, "googlenet");
    pb_string(b, GRAPH_DOC, "GoogLeNet (Caffe's bvlc_googlenet), main head, inference");
    snprintf(g->val[0], VALUE_LEN, "%s", model_tensor_info(g->m, 0, &c, &h, &w));
    emit_normalise(g, info);
    for (int i = 0; i < nops; i++) {
        ModelOpInfo o;
        model_op_info(g->m, i, &o);
        if (o.head != MODEL_HEAD_MAIN) continue;
        if (o.kind == OP_LOSS) snprintf(g->val[o.in], VALUE_LEN, "logits"); /* before its Gemm runs */
    }
    for (int i = 0; i < nops; i++) {
        ModelOpInfo o;
        model_op_info(g->m, i, &o);
        if (o.head != MODEL_HEAD_MAIN) continue;
        if (emit_op(g, &o) != 0) return -1;
        for (int k = 0; k < 2; k++) {
            int p = k ? o.bias : o.weight;
            if (p >= 0) initializer(b, pt[p].name, pt[p].shape, pt[p].ndim, params + pt[p].offset);
        }
    }
    /* the shape of every tensor of ours that a value holds, so that a
     * client's shape inference can be held against this network's */
    for (int t = 0; t < g->nt; t++) {
        int dims[3];
        const char *name = model_tensor_info(g->m, t, &dims[0], &dims[1], &dims[2]);
        if (strcmp(g->val[t], name) == 0) value_info(b, GRAPH_VALUE_INFO, name, dims, g->flat[t] ? 1 : 3);
    }
    int in[3] = {3, h, w}, out[1] = {classes};
    value_info(b, GRAPH_INPUT, "input", in, 3);
    value_info(b, GRAPH_OUTPUT, "prob", out, 1);
    if (info->logits) value_info(b, GRAPH_OUTPUT, "logits", out, 1);
    return 0;
}

int onnx_model_encode(const Model *m, const float *params, const OnnxModelInfo *info, PbBuf *out, char *err,
                      size_t errlen)
{
    OnnxGraph g = {m, out, model_tensor_count(m), NULL, NULL, err, errlen};
    g.val = calloc((size_t)g.nt, sizeof *g.val);
    g.flat = calloc((size_t)g.nt, 1);
    if (!g.val || !g.flat) out->oom = 1;
    pb_varint(out, MODEL_IR_VERSION, ONNX_IR_VERSION);
    size_t op = pb_begin(out, MODEL_OPSET);
    pb_string(out, OPSET_DOMAIN, "");
    pb_varint(out, OPSET_VERSION, ONNX_OPSET);
    pb_end(out, op);
    pb_string(out, MODEL_PRODUCER_NAME, "googlenet");
    pb_string(out, MODEL_PRODUCER_VERSION, "ckpt export");
    pb_string(out, MODEL_DOC, "input: float32 [N, 3, crop, crop], RGB in 0..1 (the mean and std in metadata are "
                              "applied inside); output prob: float32 [N, classes], softmax");
    int rc = 0;
    if (!out->oom) {
        size_t gm = pb_begin(out, MODEL_GRAPH);
        rc = graph_write(&g, params, info);
        pb_end(out, gm);
    }
    for (int i = 0; i < info->nmeta && rc == 0; i++) {
        size_t e = pb_begin(out, MODEL_METADATA);
        pb_string(out, ENTRY_KEY, info->meta[2 * i]);
        pb_string(out, ENTRY_VALUE, info->meta[2 * i + 1]);
        pb_end(out, e);
    }
    free(g.val);
    free(g.flat);
    if (rc == 0 && out->oom) rc = -1, snprintf(err, errlen, "out of memory encoding the ONNX model");
    return rc;
}

/* ---- from a checkpoint ---- */

/* The main path's parameters of a checkpoint (its layout: meta's architecture
 * with or without aux heads) gathered by name into g's layout (no aux heads). */
static int gather_main(const CkptMeta *meta, const float *ck, Model *g, char *err, size_t errlen)
{
    ModelConfig cfg = *model_config(g);
    cfg.aux = meta->aux;
    cfg.crop = model_min_crop(meta->aux) > cfg.crop ? model_min_crop(meta->aux) : cfg.crop;
    Model *layout = model_init(&cfg, err, errlen);
    if (!layout) return -1;
    int rc = ckpt_meta_check_model(meta, &cfg, model_num_params(layout), err, errlen);
    int nf, ng;
    const ParamTensor *from = model_param_tensors(layout, &nf), *to = model_param_tensors(g, &ng);
    float *dst = model_params(g);
    for (int i = 0, j = 0; i < ng && rc == 0; i++) {
        while (j < nf && strcmp(from[j].name, to[i].name) != 0) j++;
        if (j == nf || from[j].count != to[i].count) {
            snprintf(err, errlen, "parameter %s is missing from the checkpoint's layout", to[i].name);
            rc = -1;
            break;
        }
        memcpy(dst + to[i].offset, ck + from[j].offset, to[i].count * sizeof(float));
    }
    model_free(layout);
    return rc;
}

/* Class names ('\n'-separated, as the checkpoint keeps them), normalisation
 * and provenance as metadata_props: kv gets key, value, ...; returns the pairs. */
static int export_meta(const CkptMeta *m, const char *ckpt, const OnnxExportOptions *o, const OnnxModelInfo *info,
                       char (*v)[160], const char **kv)
{
    int n = 0;
    snprintf(v[0], 160, "%d", m->classes);
    snprintf(v[1], 160, "%.9g,%.9g,%.9g", info->mean[0], info->mean[1], info->mean[2]);
    snprintf(v[2], 160, "%.9g,%.9g,%.9g", info->std[0], info->std[1], info->std[2]);
    snprintf(v[3], 160, "%ld", m->step);
    snprintf(v[4], 160, "%d", o->crop);
    const char *base = strrchr(ckpt, '/') ? strrchr(ckpt, '/') + 1 : ckpt;
    const char *pairs[][2] = {
        {"classes", v[0]}, {"input_mean", v[1]}, {"input_std", v[2]},
        {"normalisation", "inside the model: data = (input - input_mean) / input_std (Sub and Div nodes); "
                          "feed RGB in 0..1"},
        {"weights", o->average ? "average" : "raw"}, {"step", v[3]}, {"crop", v[4]},
        {"params_sha256", m->params_sha256}, {"source_checkpoint", base},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) kv[n++] = pairs[i][0], kv[n++] = pairs[i][1];
    if (m->class_names && m->num_class_names == m->classes) kv[n++] = "class_names", kv[n++] = m->class_names;
    return n / 2;
}

/* The model of the export: main path only, at the crop asked for. */
static Model *export_model(const CkptMeta *meta, int crop, char *err, size_t errlen)
{
    ModelConfig cfg = model_default_config();
    cfg.classes = meta->classes;
    cfg.crop = crop;
    cfg.aux = 0;
    cfg.training = 0;
    cfg.batch = 1;
    cfg.head_dropout = meta->head_dropout;
    cfg.aux_dropout = meta->aux_dropout;
    return model_init(&cfg, err, errlen);
}

/* Encodes m (its parameters set) and writes it to out; *bytes its size. */
static int export_write(const CkptMeta *meta, Model *m, const char *ckpt, const char *out,
                        const OnnxExportOptions *o, size_t *bytes, char *err, size_t errlen)
{
    OnnxModelInfo info = {IMAGE_MEAN_RGB, IMAGE_STD_RGB, o->logits, NULL, 0};
    float mean[3], std[3];
    if (ckpt_meta_get_norm(meta, mean, std)) { /* else ImageNet's, as eval --norm checkpoint */
        memcpy(info.mean, mean, sizeof mean);
        memcpy(info.std, std, sizeof std);
    }
    char vals[5][160];
    const char *kv[20];
    info.meta = kv;
    info.nmeta = export_meta(meta, ckpt, o, &info, vals, kv);
    PbBuf b = {0};
    int rc = onnx_model_encode(m, model_params(m), &info, &b, err, errlen);
    if (rc == 0) rc = ckpt_write_bytes_atomic(out, b.p, b.len, NULL, 0, NULL, NULL, err, errlen);
    *bytes = b.len;
    pb_free(&b);
    return rc;
}

int ckpt_onnx_export(const char *ckpt, const char *out, const OnnxExportOptions *o, char *summary, size_t sumlen,
                     char *err, size_t errlen)
{
    CkptReader *r = ckpt_open(ckpt, err, errlen);
    if (!r) return -1;
    const CkptMeta *meta = ckpt_reader_meta(r);
    OnnxExportOptions opt = *o;
    if (opt.crop <= 0) opt.crop = meta->crop;
    float *w = NULL;
    Model *m = NULL;
    size_t bytes = 0;
    int rc = -1;
    if (ckpt_reader_verify(r, err, errlen) != 0) goto out;
    if (strcmp(meta->arch, CKPT_ARCH) != 0) {
        snprintf(err, errlen, "%s holds architecture '%s'; this build exports '%s'", ckpt, meta->arch, CKPT_ARCH);
        goto out;
    }
    if (!(m = export_model(meta, opt.crop, err, errlen))) goto out;
    if (!(w = malloc(meta->num_params * sizeof(float)))) {
        snprintf(err, errlen, "out of memory for %zu weights", meta->num_params);
        goto out;
    }
    if (ckpt_reader_read(r, opt.average ? CKPT_SEC_AVERAGE : CKPT_SEC_WEIGHTS, w, meta->num_params, err, errlen) != 0 ||
        gather_main(meta, w, m, err, errlen) != 0 || export_write(meta, m, ckpt, out, &opt, &bytes, err, errlen) != 0)
        goto out;
    snprintf(summary, sumlen, "wrote %s: ONNX opset %d, input [N, 3, %d, %d] RGB in 0..1, output prob [N, %d]%s; "
             "%zu parameters of the main path (%s weights, step %ld), %.1f MB",
             out, ONNX_OPSET, opt.crop, opt.crop, meta->classes, opt.logits ? " and logits" : "",
             model_num_params(m), opt.average ? "average" : "raw", meta->step, bytes / 1e6);
    rc = 0;
out:
    free(w);
    model_free(m);
    ckpt_close(r);
    return rc;
}
