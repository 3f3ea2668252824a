/* model.c: GoogLeNet built from its module table, its memory plan, and the
 * forward and backward passes over the layer functions (see model.h).
 *
 * The table below is the only place the architecture is written down; the ops,
 * the tensors, the parameter layout and the parameter count are derived from it.
 * Ops are kept in forward order and parameters are laid out in op order, so
 * backward (reverse op order) finishes gradients from the end of the buffer
 * towards its start: the hook can hand finished suffixes to communication.
 */
#include "nn/model.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/clock.h"
#include "nn/activation.h"
#include "nn/conv.h"
#include "nn/fc.h"
#include "nn/fuse.h"
#include "nn/lrn.h"
#include "nn/parallel.h"
#include "nn/pool.h"
#include "nn/rng.h"

/* ---- the architecture: the paper's Table 1 as Caffe's bvlc_googlenet reads it (docs/network.md), Caffe's layer names ---- */

typedef enum { M_CONV, M_MAXPOOL, M_LRN, M_INCEPTION, M_AUX, M_HEAD } ModuleKind;

typedef struct {
    ModuleKind kind;
    const char *name;
    /* M_CONV: cout, k, stride, pad.  M_MAXPOOL: k, stride.
     * M_INCEPTION: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj.
     * M_AUX: 1x1 conv channels, fc width (on the previous module's output). */
    int v[6];
} ModuleSpec;

static const ModuleSpec GOOGLENET[] = {
    {M_CONV, "conv1/7x7_s2", {64, 7, 2, 3}},
    {M_MAXPOOL, "pool1/3x3_s2", {3, 2}},
    {M_LRN, "pool1/norm1", {0}},
    {M_CONV, "conv2/3x3_reduce", {64, 1, 1, 0}},
    {M_CONV, "conv2/3x3", {192, 3, 1, 1}},
    {M_LRN, "conv2/norm2", {0}},
    {M_MAXPOOL, "pool2/3x3_s2", {3, 2}},
    {M_INCEPTION, "inception_3a", {64, 96, 128, 16, 32, 32}},
    {M_INCEPTION, "inception_3b", {128, 128, 192, 32, 96, 64}},
    {M_MAXPOOL, "pool3/3x3_s2", {3, 2}},
    {M_INCEPTION, "inception_4a", {192, 96, 208, 16, 48, 64}},
    {M_AUX, "loss1", {128, 1024}},
    {M_INCEPTION, "inception_4b", {160, 112, 224, 24, 64, 64}},
    {M_INCEPTION, "inception_4c", {128, 128, 256, 24, 64, 64}},
    {M_INCEPTION, "inception_4d", {112, 144, 288, 32, 64, 64}},
    {M_AUX, "loss2", {128, 1024}},
    {M_INCEPTION, "inception_4e", {256, 160, 320, 32, 128, 128}},
    {M_MAXPOOL, "pool4/3x3_s2", {3, 2}},
    {M_INCEPTION, "inception_5a", {256, 160, 320, 32, 128, 128}},
    {M_INCEPTION, "inception_5b", {384, 192, 384, 48, 128, 128}},
    {M_HEAD, "loss3", {0}},
};

/* LRN(size 5, alpha 1e-4, beta 0.75, k 1); aux pooling 5x5/3 to 4x4 at 14x14. */
static const LrnShape LRN_PARAMS = {.size = 5, .alpha = 1e-4f, .beta = 0.75f, .k = 1.0f};
#define AUX_POOL_OUT 4
#define AUX_CAFFE_MAP 14
#define AUX_LOSS_WEIGHT 0.3f

#define MAX_TENSORS 192
#define MAX_OPS 192
#define MAX_PARAMS 160

typedef struct {
    char name[48];
    int c, h, w;
    int parent; /* -1, or the concatenation this is a channel slice of */
    int c_off;
    int head;
    /* plan: first and last step touching data / diff (-1: never) */
    int d_lo, d_hi, g_lo, g_hi;
    float *data, *diff; /* (c, batch, h, w) at the planned batch */
} Tensor;

typedef struct {
    OpKind kind;
    char name[48];
    int in, out; /* tensors; out = -1 for a loss */
    int head;
    int relu;
    int w, b;     /* parameter tensors, or -1 */
    int accum_dx; /* backward adds to in's diff (another consumer wrote it first) */
    float drop_rate;   /* OP_DROPOUT */
    float loss_weight; /* OP_LOSS */
    ConvShape conv;
    ConvPlan plan; /* OP_CONV: the algorithm of each pass */
    PoolShape pool;
    unsigned char *arg; /* OP_MAXPOOL in training: each output's argmax, (c, batch, ho, wo) */
    int lead;           /* OP_CONV 1x1: the op whose forward computes this one too, or -1 */
    int group[4], ngroup; /* a lead: the 1x1 convolutions of its input it computes (itself first) */
    ConvShape group_shape; /* a lead: its input, and cout the group's total */
    ConvFilterCache filters; /* inference models: the forward's prepared filters */
    int fuse[2], nfuse;      /* inference: the ops after this one its forward computes too (nn/fuse.h) */
    int fused_into;          /* the op whose forward computes this one's, or -1 */
    int pooled;              /* inference, OP_CONV 1x1: the max pooling its forward computes first
                                (conv_forward_pooled), whose input it reads, or -1 */
} Op;

struct Model {
    ModelConfig cfg;
    Tensor t[MAX_TENSORS];
    int nt;
    Op op[MAX_OPS];
    int nop;
    ParamTensor pt[MAX_PARAMS];
    int npt;
    size_t nparams;
    float *params, *grads;
    float *arena;
    size_t arena_floats;
    float *work;     /* convolution scratch (im2col, Winograd), shared by all layers */
    size_t work_cap; /* floats */
    int logits[MODEL_HEADS]; /* tensor of each head's logits, -1 if absent */
    int *labels;             /* (batch) copy of the last forward's labels */
    int has_labels;
    int n;                   /* images in the last forward */
    ModelMode mode;
    uint64_t dropout_key;
    double prof[2][OP_KINDS]; /* forward, backward */
    double op_time[2][MAX_OPS];
    double conv_time[2][MAX_OPS]; /* backward of a convolution: data, weights (bias in neither) */
};

static const char *const KIND_NAMES[OP_KINDS] = {"conv", "maxpool", "avgpool", "lrn",
                                                 "flatten", "fc", "dropout", "loss"};

const char *model_op_kind_name(OpKind k) { return k < OP_KINDS ? KIND_NAMES[k] : "?"; }

ModelConfig model_default_config(void)
{
    ModelConfig c = {.classes = 1000, .crop = 224, .batch = 32, .aux = 1, .training = 1,
                     .head_dropout = 0.4f, .aux_dropout = 0.7f};
    return c;
}

/* ---- building ---- */

static int add_tensor(Model *m, const char *name, int c, int h, int w, int head)
{
    assert(m->nt < MAX_TENSORS);
    Tensor *t = &m->t[m->nt];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->c = c;
    t->h = h;
    t->w = w;
    t->parent = -1;
    t->head = head;
    t->d_lo = t->g_lo = -1;
    return m->nt++;
}

static int add_param(Model *m, const char *layer, const char *what, const int *shape, int ndim,
                     int fan_in, int is_bias, int head, float bias_value)
{
    assert(m->npt < MAX_PARAMS);
    ParamTensor *p = &m->pt[m->npt];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s/%s", layer, what);
    p->offset = m->nparams;
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->count *= (size_t)shape[i];
    }
    p->ndim = ndim;
    p->fan_in = fan_in;
    p->is_bias = is_bias;
    p->head = head;
    p->lr_mult = is_bias ? 2.0f : 1.0f;
    p->decay_mult = is_bias ? 0.0f : 1.0f;
    p->bias_value = bias_value;
    m->nparams += p->count;
    return m->npt++;
}

static Op *add_op(Model *m, OpKind kind, const char *name, int in, int out, int head)
{
    assert(m->nop < MAX_OPS);
    Op *o = &m->op[m->nop++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    snprintf(o->name, sizeof o->name, "%s", name);
    o->in = in;
    o->out = out;
    o->head = head;
    o->w = o->b = -1;
    o->lead = -1;
    o->fused_into = -1;
    o->pooled = -1;
    return o;
}

/* A convolution + ReLU writing into tensor `out` (-1: a new tensor). */
static int build_conv(Model *m, const char *name, int in, int out, int cout, int k, int stride,
                      int pad, int head)
{
    const Tensor *x = &m->t[in];
    ConvShape s;
    conv_shape_init(&s, x->c, cout, k, stride, pad, x->h, x->w);
    if (out < 0) out = add_tensor(m, name, cout, s.ho, s.wo, head);
    Op *o = add_op(m, OP_CONV, name, in, out, head);
    o->conv = s;
    o->relu = 1;
    int ws[4] = {cout, x->c, k, k}, bs[1] = {cout};
    o->w = add_param(m, name, "weight", ws, 4, x->c * k * k, 0, head, 0.0f);
    o->b = add_param(m, name, "bias", bs, 1, 0, 1, head, 0.2f);
    return out;
}

static int build_pool(Model *m, const char *name, int in, int out, PoolKind kind, int k,
                      int stride, int pad, int head)
{
    const Tensor *x = &m->t[in];
    PoolShape s;
    pool_shape_init(&s, kind, k, stride, pad, x->h, x->w);
    if (out < 0) out = add_tensor(m, name, x->c, s.ho, s.wo, head);
    Op *o = add_op(m, kind == POOL_MAX ? OP_MAXPOOL : OP_AVGPOOL, name, in, out, head);
    o->pool = s;
    return out;
}

static int build_fc(Model *m, const char *name, int in, int outputs, int relu, float bias,
                    int head)
{
    int features = m->t[in].c;
    int out = add_tensor(m, name, outputs, 1, 1, head);
    Op *o = add_op(m, OP_FC, name, in, out, head);
    o->relu = relu;
    int ws[2] = {outputs, features}, bs[1] = {outputs};
    o->w = add_param(m, name, "weight", ws, 2, features, 0, head, 0.0f);
    o->b = add_param(m, name, "bias", bs, 1, 0, 1, head, bias);
    return out;
}

static int build_dropout(Model *m, const char *name, int in, float p, int head)
{
    int out = add_tensor(m, name, m->t[in].c, m->t[in].h, m->t[in].w, head);
    add_op(m, OP_DROPOUT, name, in, out, head)->drop_rate = p;
    return out;
}

static void build_loss(Model *m, const char *name, int logits, float weight, int head)
{
    add_op(m, OP_LOSS, name, logits, -1, head)->loss_weight = weight;
    m->logits[head] = logits;
}

static int build_inception(Model *m, const char *name, int in, const int *v)
{
    const Tensor *x = &m->t[in];
    int h = x->h, w = x->w;
    char n[48];
    int cout = v[0] + v[2] + v[4] + v[5];
    snprintf(n, sizeof n, "%s/output", name);
    int out = add_tensor(m, n, cout, h, w, 0);
    int widths[4] = {v[0], v[2], v[4], v[5]}, branch[4], off = 0;
    static const char *bnames[4] = {"1x1", "3x3", "5x5", "pool_proj"};
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s/%s", name, bnames[i]);
        branch[i] = add_tensor(m, n, widths[i], h, w, 0);
        m->t[branch[i]].parent = out;
        m->t[branch[i]].c_off = off;
        off += widths[i];
    }
    char r[48];
    snprintf(n, sizeof n, "%s/1x1", name);
    build_conv(m, n, in, branch[0], v[0], 1, 1, 0, 0);
    snprintf(r, sizeof r, "%s/3x3_reduce", name);
    snprintf(n, sizeof n, "%s/3x3", name);
    build_conv(m, n, build_conv(m, r, in, -1, v[1], 1, 1, 0, 0), branch[1], v[2], 3, 1, 1, 0);
    snprintf(r, sizeof r, "%s/5x5_reduce", name);
    snprintf(n, sizeof n, "%s/5x5", name);
    build_conv(m, n, build_conv(m, r, in, -1, v[3], 1, 1, 0, 0), branch[2], v[4], 5, 1, 2, 0);
    snprintf(r, sizeof r, "%s/pool", name);
    snprintf(n, sizeof n, "%s/pool_proj", name);
    build_conv(m, n, build_pool(m, r, in, -1, POOL_MAX, 3, 1, 1, 0), branch[3], v[5], 1, 1, 0, 0);
    return out;
}

static int build_aux(Model *m, const char *name, int in, const int *v, int head)
{
    const Tensor *x = &m->t[in];
    char n[48];
    snprintf(n, sizeof n, "%s/ave_pool", name);
    int pooled;
    if (x->h == AUX_CAFFE_MAP && x->w == AUX_CAFFE_MAP) {
        pooled = build_pool(m, n, in, -1, POOL_AVG, 5, 3, 0, head);
    } else {
        pooled = add_tensor(m, n, x->c, AUX_POOL_OUT, AUX_POOL_OUT, head);
        Op *o = add_op(m, OP_AVGPOOL, n, in, pooled, head);
        pool_shape_adaptive(&o->pool, x->h, x->w, AUX_POOL_OUT, AUX_POOL_OUT);
    }
    snprintf(n, sizeof n, "%s/conv", name);
    int conv = build_conv(m, n, pooled, -1, v[0], 1, 1, 0, head);
    const Tensor *c = &m->t[conv];
    snprintf(n, sizeof n, "%s/flatten", name);
    int flat = add_tensor(m, n, c->c * c->h * c->w, 1, 1, head);
    add_op(m, OP_FLATTEN, n, conv, flat, head);
    snprintf(n, sizeof n, "%s/fc", name);
    int fc = build_fc(m, n, flat, v[1], 1, 0.2f, head);
    snprintf(n, sizeof n, "%s/drop_fc", name);
    int drop = build_dropout(m, n, fc, m->cfg.aux_dropout, head);
    snprintf(n, sizeof n, "%s/classifier", name);
    int logits = build_fc(m, n, drop, m->cfg.classes, 0, 0.0f, head);
    snprintf(n, sizeof n, "%s/loss", name);
    build_loss(m, n, logits, AUX_LOSS_WEIGHT, head);
    return in;
}

static int build_head(Model *m, const char *name, int in)
{
    const Tensor *x = &m->t[in];
    /* global average: Caffe's 7x7/1 at 224, the whole map at other crops */
    int pooled = add_tensor(m, "pool5/7x7_s1", x->c, 1, 1, 0);
    Op *o = add_op(m, OP_AVGPOOL, "pool5/7x7_s1", in, pooled, 0);
    pool_shape_init(&o->pool, POOL_AVG, x->h, 1, 0, x->h, x->w);
    int drop = build_dropout(m, "pool5/drop_7x7_s1", pooled, m->cfg.head_dropout, 0);
    char n[48];
    snprintf(n, sizeof n, "%s/classifier", name);
    int logits = build_fc(m, n, drop, m->cfg.classes, 0, 0.0f, 0);
    snprintf(n, sizeof n, "%s/loss", name);
    build_loss(m, n, logits, 1.0f, 0);
    return logits;
}

static void build(Model *m)
{
    int cur = add_tensor(m, "data", 3, m->cfg.crop, m->cfg.crop, 0);
    int aux_head = MODEL_HEAD_AUX1;
    for (int i = 0; i < MODEL_HEADS; i++) m->logits[i] = -1;
    for (size_t i = 0; i < sizeof GOOGLENET / sizeof GOOGLENET[0]; i++) {
        const ModuleSpec *s = &GOOGLENET[i];
        switch (s->kind) {
        case M_CONV:
            cur = build_conv(m, s->name, cur, -1, s->v[0], s->v[1], s->v[2], s->v[3], 0);
            break;
        case M_MAXPOOL:
            cur = build_pool(m, s->name, cur, -1, POOL_MAX, s->v[0], s->v[1], 0, 0);
            break;
        case M_LRN: {
            int out = add_tensor(m, s->name, m->t[cur].c, m->t[cur].h, m->t[cur].w, 0);
            add_op(m, OP_LRN, s->name, cur, out, 0);
            cur = out;
            break;
        }
        case M_INCEPTION:
            cur = build_inception(m, s->name, cur, s->v);
            break;
        case M_AUX:
            if (m->cfg.aux) build_aux(m, s->name, cur, s->v, aux_head);
            aux_head++;
            break;
        case M_HEAD:
            build_head(m, s->name, cur);
            break;
        }
    }
}

/* The 1x1 convolutions (with ReLU) of one input, in one module, run their
 * forward as one GEMM (conv_forward_pointwise_many): the inception module's
 * 1x1 and both reduce layers. The first of them leads. */
static void group_pointwise(Model *m)
{
    for (int i = 0; i < m->nop; i++) {
        Op *a = &m->op[i];
        if (a->kind != OP_CONV || !conv_is_pointwise(&a->conv) || !a->relu || a->lead >= 0) continue;
        a->group[0] = i;
        a->ngroup = 1;
        a->group_shape = a->conv;
        for (int j = i + 1; j < m->nop && a->ngroup < 4; j++) {
            Op *b = &m->op[j];
            if (b->kind != OP_CONV || !conv_is_pointwise(&b->conv) || !b->relu || b->in != a->in || b->head != a->head)
                continue;
            b->lead = i;
            a->group[a->ngroup++] = j;
            a->group_shape.cout += b->conv.cout;
        }
        if (a->ngroup > 1) a->lead = i;
        else a->ngroup = 0;
    }
}

/* ---- checking the shapes a crop gives ---- */

/* 0 when every map is non-empty and the aux heads see at least 4x4. */
static int check_shapes(const Model *m, char *err, size_t errlen)
{
    for (int i = 0; i < m->nt; i++) {
        const Tensor *t = &m->t[i];
        if (t->h < 1 || t->w < 1) {
            snprintf(err, errlen, "%s would be empty", t->name);
            return -1;
        }
    }
    for (int i = 0; i < m->nop; i++) {
        const Op *o = &m->op[i];
        const Tensor *x = &m->t[o->in];
        if (o->kind == OP_MAXPOOL && (x->h < o->pool.k - o->pool.pad || x->w < o->pool.k - o->pool.pad)) {
            snprintf(err, errlen, "%s's input would be %dx%d, smaller than its %dx%d window",
                     o->name, x->h, x->w, o->pool.k, o->pool.k);
            return -1;
        }
        if (o->kind == OP_AVGPOOL && o->pool.adaptive && (x->h < AUX_POOL_OUT || x->w < AUX_POOL_OUT)) {
            snprintf(err, errlen, "%s's input would be %dx%d; the auxiliary heads need at least %dx%d",
                     o->name, x->h, x->w, AUX_POOL_OUT, AUX_POOL_OUT);
            return -1;
        }
    }
    return 0;
}

static int shapes_ok_at(int crop, int aux)
{
    Model *m = calloc(1, sizeof *m);
    if (!m) return 0;
    m->cfg = model_default_config();
    m->cfg.crop = crop;
    m->cfg.aux = aux;
    m->cfg.classes = 2;
    build(m);
    char err[160];
    int ok = check_shapes(m, err, sizeof err) == 0;
    free(m);
    return ok;
}

int model_min_crop(int aux)
{
    for (int c = 8; c <= 1024; c++)
        if (shapes_ok_at(c, aux)) return c;
    return 1024;
}

/* ---- the memory plan ---- */

static int root_of(const Model *m, int t) { return m->t[t].parent >= 0 ? m->t[t].parent : t; }

static void touch(int *lo, int *hi, int step)
{
    if (*lo < 0 || step < *lo) *lo = step;
    if (step > *hi) *hi = step;
}

static int op_planned(const Model *m, const Op *o) { return m->cfg.training || o->head == 0; }

/* ---- inference: chains of layers one pass computes (nn/fuse.h) ---- */

static int op_has_choice(const Op *o);

/* The one op this model runs that reads tensor t (a tensor without parent),
 * or -1 when none or several do. */
static int only_reader(const Model *m, int t)
{
    int found = -1;
    for (int i = 0; i < m->nop; i++) {
        const Op *o = &m->op[i];
        if (!op_planned(m, o) || root_of(m, o->in) != t) continue;
        if (found >= 0) return -1;
        found = i;
    }
    return found;
}

/* The max pooling that alone reads the output of op i and can be fused into
 * it, or -1. */
static int fusable_pool(const Model *m, int i)
{
    const Op *a = &m->op[i];
    if (m->t[a->out].parent >= 0) return -1;
    int p = only_reader(m, a->out);
    if (p < 0 || m->op[p].kind != OP_MAXPOOL || !fuse_pool_applies(&m->op[p].pool)) return -1;
    return p;
}

static void fuse_absorb(Model *m, int lead, int i)
{
    Op *a = &m->op[lead];
    assert(a->nfuse < 2);
    a->fuse[a->nfuse++] = i;
    m->op[i].fused_into = lead;
}

/* A max pooling whose output only a 1x1 convolution (not one of a group)
 * reads, and which that convolution's GEMM can compute block by block
 * (conv_pooled_applies): the convolution's forward does both. */
static void fuse_pool_conv(Model *m, int i)
{
    const Op *a = &m->op[i];
    if (m->t[a->out].parent >= 0) return;
    int c = only_reader(m, a->out);
    if (c < 0) return;
    Op *b = &m->op[c];
    if (b->kind != OP_CONV || b->lead >= 0 || !conv_pooled_applies(&b->conv, &a->pool)) return;
    b->pooled = i;
    m->op[i].fused_into = c;
}

/* Found by shape and by which ops read which tensors, not by name: a direct
 * convolution whose output only a max pooling reads, whose output only an LRN
 * reads (conv1, pool1, norm1); an LRN whose output only a max pooling reads
 * (norm2, pool2); a 3x3 stride-1 max pooling whose output only a 1x1
 * convolution reads (each inception module's pool and pool_proj). Not in
 * training, whose backward reads the inner tensors, nor with keep_activations
 * or no_fuse. */
static void fuse_chains(Model *m)
{
    if (m->cfg.training || m->cfg.keep_activations || m->cfg.no_fuse) return;
    for (int i = 0; i < m->nop; i++) {
        Op *a = &m->op[i];
        if (!op_planned(m, a) || a->fused_into >= 0 || a->nfuse || a->pooled >= 0) continue;
        if (a->kind == OP_MAXPOOL) {
            fuse_pool_conv(m, i);
            continue;
        }
        if (a->kind == OP_CONV && a->lead < 0 && !op_has_choice(a) && fuse_conv_applies(&a->conv)) {
            int p = fusable_pool(m, i);
            if (p < 0 || m->t[m->op[p].out].parent >= 0) continue;
            int l = only_reader(m, m->op[p].out);
            if (l < 0 || m->op[l].kind != OP_LRN) continue;
            fuse_absorb(m, i, p);
            fuse_absorb(m, i, l);
        } else if (a->kind == OP_LRN) {
            int p = fusable_pool(m, i);
            if (p >= 0) fuse_absorb(m, i, p);
        }
    }
}

/* The tensor op o's forward writes: the last op's of its chain; and the one
 * it reads: the first op's. */
static int op_final_out(const Model *m, const Op *o) { return o->nfuse ? m->op[o->fuse[o->nfuse - 1]].out : o->out; }
static int op_first_in(const Model *m, const Op *o) { return o->pooled >= 0 ? m->op[o->pooled].in : o->in; }

typedef struct {
    size_t size, off;
    int lo, hi;
    int tensor, is_diff; /* is_diff 2: tensor is an op, the block its argmax record */
} Block;

static int by_size_desc(const void *a, const void *b)
{
    const Block *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->tensor - y->tensor;
}

static int by_off(const void *a, const void *b)
{
    const Block *x = *(Block *const *)a, *y = *(Block *const *)b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Greedy placement, largest first, at the lowest offset free over its lifetime. */
static size_t place_blocks(Block *blk, int nb)
{
    qsort(blk, (size_t)nb, sizeof *blk, by_size_desc);
    Block **conflict = malloc(sizeof(Block *) * (size_t)(nb ? nb : 1));
    size_t total = 0;
    for (int i = 0; i < nb; i++) {
        int nc = 0;
        for (int j = 0; j < i; j++)
            if (blk[j].lo <= blk[i].hi && blk[i].lo <= blk[j].hi) conflict[nc++] = &blk[j];
        qsort(conflict, (size_t)nc, sizeof *conflict, by_off);
        size_t off = 0;
        for (int j = 0; j < nc; j++) {
            if (off + blk[i].size <= conflict[j]->off) break;
            if (conflict[j]->off + conflict[j]->size > off) off = conflict[j]->off + conflict[j]->size;
        }
        blk[i].off = off;
        if (off + blk[i].size > total) total = off + blk[i].size;
    }
    free(conflict);
    return total;
}

/* What each backward reads besides the output's gradient. Max pooling in
 * training reads its argmax record, not its input; LRN recomputes its scales
 * from its input; dropout regenerates its mask from its key. */
static int backward_reads_input(const Op *o)
{
    return o->kind == OP_CONV || o->kind == OP_FC || o->kind == OP_LRN || o->kind == OP_LOSS;
}

static int backward_reads_output(const Op *o)
{
    return (o->kind == OP_CONV || o->kind == OP_FC) && o->relu;
}

/* (Re)allocates the convolution scratch to `need` floats. */
static int work_resize(Model *m, size_t need, const char *what, char *err, size_t errlen)
{
    free(m->work);
    m->work = aligned_alloc(64, (need + 15) / 16 * 16 * sizeof(float));
    m->work_cap = m->work ? need : 0;
    if (!m->work) {
        snprintf(err, errlen, "cannot allocate %.0f MB of %s", need * 4.0 / 1e6, what);
        return -1;
    }
    return 0;
}

/* Sizes the convolution scratch for the plans of the layers the model runs. */
static int work_alloc(Model *m, char *err, size_t errlen)
{
    size_t need = 16;
    for (int i = 0; i < m->nop; i++) {
        const Op *o = &m->op[i];
        if (o->kind != OP_CONV || !op_planned(m, o)) continue;
        size_t f = conv_work_floats(&o->conv, &o->plan, m->cfg.batch, parallel_threads(), m->cfg.training);
        if (f > need) need = f;
        if (o->ngroup > 1) {
            f = conv_pointwise_many_floats(&o->group_shape, m->cfg.batch, parallel_threads());
            if (f > need) need = f;
        }
    }
    for (int i = 0; i < m->nop; i++) {
        const Op *o = &m->op[i];
        if (o->pooled >= 0) {
            size_t f = conv_pooled_work_floats(&o->conv, &m->op[o->pooled].pool, m->cfg.batch, parallel_threads());
            if (f > need) need = f;
        }
        if (!o->nfuse) continue;
        const PoolShape *ps = &m->op[o->fuse[0]].pool;
        size_t f = o->kind == OP_CONV ? fuse_conv_pool_lrn_floats(&o->conv, ps, parallel_threads())
                                      : fuse_lrn_pool_floats(ps, m->t[o->in].c, parallel_threads());
        if (f > need) need = f;
    }
    if (m->work && need <= m->work_cap) return 0;
    return work_resize(m, need, "convolution scratch", err, errlen);
}

static int plan(Model *m, char *err, size_t errlen)
{
    int steps = 0;
    int order[MAX_OPS];
    for (int i = 0; i < m->nop; i++)
        if (op_planned(m, &m->op[i])) order[steps++] = i;
    int F = steps;
    /* forward step of the k-th planned op: k; its backward step: 2F-1-k */
    int step_of[MAX_OPS];
    for (int k = 0; k < F; k++) step_of[order[k]] = k;
    for (int k = 0; k < F; k++) {
        Op *o = &m->op[order[k]];
        /* a fused chain reads its first op's input and writes its last op's
         * output at the step of the op that computes it */
        if (o->fused_into >= 0) continue;
        Tensor *in = &m->t[root_of(m, op_first_in(m, o))];
        touch(&in->d_lo, &in->d_hi, k);
        if (o->out >= 0) {
            Tensor *out = &m->t[root_of(m, op_final_out(m, o))];
            touch(&out->d_lo, &out->d_hi, k);
            /* a grouped 1x1 convolution is computed with its lead */
            if (o->lead >= 0) touch(&out->d_lo, &out->d_hi, step_of[o->lead]);
            /* inference keeps a head's output until the end, for model_logits */
            if (o->kind == OP_FC && !m->cfg.training) touch(&out->d_lo, &out->d_hi, F);
        }
        if (!m->cfg.training) continue;
        int b = 2 * F - 1 - k;
        /* data live into backward only where the backward reads them */
        if (backward_reads_input(o) || m->cfg.keep_activations) touch(&in->d_lo, &in->d_hi, b);
        if (o->in != 0) touch(&in->g_lo, &in->g_hi, b);
        if (o->out >= 0) {
            Tensor *out = &m->t[root_of(m, o->out)];
            if (backward_reads_output(o) || m->cfg.keep_activations) touch(&out->d_lo, &out->d_hi, b);
            touch(&out->g_lo, &out->g_hi, b);
        }
    }
    /* the first backward (the last consumer) writes a tensor's diff; earlier consumers add */
    if (m->cfg.training) {
        char written[MAX_TENSORS] = {0};
        for (int k = F - 1; k >= 0; k--) {
            Op *o = &m->op[order[k]];
            int r = root_of(m, o->in);
            o->accum_dx = written[r];
            written[r] = 1;
        }
    }
    Block *blk = calloc((size_t)m->nt * 2 + (size_t)m->nop, sizeof *blk);
    if (!blk) {
        snprintf(err, errlen, "out of memory planning activations");
        return -1;
    }
    int nb = 0;
    const int batch = m->cfg.batch;
    for (int i = 0; i < m->nt; i++) {
        Tensor *t = &m->t[i];
        if (t->parent >= 0) continue;
        size_t floats = (size_t)t->c * batch * t->h * t->w;
        size_t size = (floats + 15) & ~(size_t)15; /* 64-byte aligned offsets */
        if (t->d_lo >= 0) blk[nb++] = (Block){size, 0, t->d_lo, t->d_hi, i, 0};
        if (t->g_lo >= 0) blk[nb++] = (Block){size, 0, t->g_lo, t->g_hi, i, 1};
    }
    /* max pooling records where each maximum was, from its forward to its backward */
    for (int k = 0; k < F && m->cfg.training; k++) {
        const Op *o = &m->op[order[k]];
        if (o->kind != OP_MAXPOOL) continue;
        const Tensor *y = &m->t[o->out];
        size_t bytes = (size_t)y->c * batch * y->h * y->w, floats = ((bytes + 3) / 4 + 15) & ~(size_t)15;
        blk[nb++] = (Block){floats, 0, k, 2 * F - 1 - k, order[k], 2};
    }
    m->arena_floats = place_blocks(blk, nb);
    m->arena = aligned_alloc(64, (m->arena_floats ? m->arena_floats : 16) * sizeof(float));
    if (!m->arena) {
        free(blk);
        snprintf(err, errlen, "cannot allocate %.0f MB of activations for batch %d; use a smaller --batch",
                 m->arena_floats * 4.0 / 1e6, batch);
        return -1;
    }
    for (int i = 0; i < nb; i++) {
        if (blk[i].is_diff == 2) {
            m->op[blk[i].tensor].arg = (unsigned char *)(m->arena + blk[i].off);
            continue;
        }
        Tensor *t = &m->t[blk[i].tensor];
        if (blk[i].is_diff) t->diff = m->arena + blk[i].off;
        else t->data = m->arena + blk[i].off;
    }
    free(blk);
    for (int i = 0; i < m->nop; i++) {
        Op *o = &m->op[i];
        if (o->kind != OP_CONV) continue;
        ConvAlgo a = m->cfg.conv_gemm ? CONV_GEMM : o->conv.k == 3 ? CONV_F4X3 : o->conv.k == 5 ? CONV_F4X5 : CONV_GEMM;
        o->plan = conv_plan_uniform(a, &o->conv, batch);
    }
    return work_alloc(m, err, errlen);
}

/* ---- lifecycle ---- */

Model *model_init(const ModelConfig *cfg, char *err, size_t errlen)
{
    if (cfg->classes < 2) {
        snprintf(err, errlen, "classes must be at least 2, got %d", cfg->classes);
        return NULL;
    }
    if (cfg->batch < 1) {
        snprintf(err, errlen, "batch must be at least 1, got %d", cfg->batch);
        return NULL;
    }
    if (cfg->head_dropout < 0 || cfg->head_dropout >= 1 || cfg->aux_dropout < 0 || cfg->aux_dropout >= 1) {
        snprintf(err, errlen, "dropout rates must be in [0, 1)");
        return NULL;
    }
    Model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    build(m);
    group_pointwise(m);
    char why[160];
    if (check_shapes(m, why, sizeof why) != 0) {
        snprintf(err, errlen, "crop %d is too small for GoogLeNet%s: %s (smallest crop: %d)",
                 cfg->crop, cfg->aux ? " with aux heads" : "", why, model_min_crop(cfg->aux));
        free(m);
        return NULL;
    }
    fuse_chains(m);
    m->params = aligned_alloc(64, ((m->nparams + 15) & ~(size_t)15) * sizeof(float));
    m->grads = aligned_alloc(64, ((m->nparams + 15) & ~(size_t)15) * sizeof(float));
    m->labels = calloc((size_t)cfg->batch, sizeof(int));
    if (!m->params || !m->grads || !m->labels || plan(m, err, errlen) != 0) {
        if (!m->params || !m->grads || !m->labels) snprintf(err, errlen, "out of memory");
        model_free(m);
        return NULL;
    }
    memset(m->params, 0, m->nparams * sizeof(float));
    memset(m->grads, 0, m->nparams * sizeof(float));
    return m;
}

void model_free(Model *m)
{
    if (!m) return;
    for (int i = 0; i < m->nop; i++) conv_filter_cache_free(&m->op[i].filters);
    free(m->params);
    free(m->grads);
    free(m->arena);
    free(m->work);
    free(m->labels);
    free(m);
}

const ModelConfig *model_config(const Model *m) { return &m->cfg; }
size_t model_num_params(const Model *m) { return m->nparams; }
float *model_params(Model *m) { return m->params; }
float *model_grads(Model *m) { return m->grads; }

const ParamTensor *model_param_tensors(const Model *m, int *count)
{
    *count = m->npt;
    return m->pt;
}

size_t model_activation_bytes(const Model *m)
{
    return (m->arena_floats + m->work_cap) * sizeof(float);
}

void model_init_weights(Model *m, uint64_t seed)
{
    for (int i = 0; i < m->npt; i++) {
        const ParamTensor *p = &m->pt[i];
        float *w = m->params + p->offset;
        if (p->is_bias) {
            for (size_t j = 0; j < p->count; j++) w[j] = p->bias_value;
            continue;
        }
        float a = sqrtf(3.0f / (float)p->fan_in);
        uint64_t key = rng_key(seed, 0x696e6974ULL /* "init" */, (uint64_t)i, 0);
        for (size_t j = 0; j < p->count; j++) w[j] = (2.0f * rng_uniform(key, j) - 1.0f) * a;
    }
}

static double op_macs(const Op *o, const Model *m, int n, int backward)
{
    double f = 0;
    if (o->kind == OP_CONV) f = conv_macs(&o->conv, n);
    else if (o->kind == OP_FC) f = (double)m->t[o->in].c * m->t[o->out].c * n;
    if (!backward) return f;
    return o->in == 0 ? f : 2 * f; /* dW always, dX unless the input is the image */
}

double model_forward_macs(const Model *m, int n, ModelMode mode)
{
    double s = 0;
    for (int i = 0; i < m->nop; i++)
        if (mode == MODEL_TRAIN || m->op[i].head == 0) s += op_macs(&m->op[i], m, n, 0);
    return s;
}

double model_train_macs(const Model *m, int n)
{
    double s = 0;
    for (int i = 0; i < m->nop; i++) s += op_macs(&m->op[i], m, n, 0) + op_macs(&m->op[i], m, n, 1);
    return s;
}

int model_tensor_shape(const Model *m, const char *name, int *c, int *h, int *w)
{
    for (int i = 0; i < m->nt; i++)
        if (strcmp(m->t[i].name, name) == 0) {
            *c = m->t[i].c;
            *h = m->t[i].h;
            *w = m->t[i].w;
            return 0;
        }
    return -1;
}

const float *model_logits(const Model *m, int head)
{
    int t = head >= 0 && head < MODEL_HEADS ? m->logits[head] : -1;
    return t >= 0 ? m->t[t].data : NULL;
}

void model_profile(const Model *m, double forward[OP_KINDS], double backward[OP_KINDS])
{
    memcpy(forward, m->prof[0], sizeof m->prof[0]);
    memcpy(backward, m->prof[1], sizeof m->prof[1]);
}

void model_profile_reset(Model *m)
{
    memset(m->prof, 0, sizeof m->prof);
    memset(m->op_time, 0, sizeof m->op_time);
    memset(m->conv_time, 0, sizeof m->conv_time);
}

int model_num_ops(const Model *m) { return m->nop; }

void model_op_profile(const Model *m, int i, ModelOpProfile *p)
{
    const Op *o = &m->op[i];
    p->name = o->name;
    p->kind = o->kind;
    p->forward_s = m->op_time[0][i];
    p->backward_s = m->op_time[1][i];
    p->backward_data_s = m->conv_time[0][i];
    p->backward_weights_s = m->conv_time[1][i];
    p->forward_macs_per_image = op_macs(o, m, 1, 0);
    p->backward_macs_per_image = op_macs(o, m, 1, 1);
    p->algo[0] = '\0';
    p->fused_into = o->fused_into;
    if (o->fused_into >= 0) {
        snprintf(p->algo, sizeof p->algo, "fused into %s", m->op[o->fused_into].name);
    } else if (o->kind == OP_CONV && o->lead >= 0 && o->ngroup == 0) {
        snprintf(p->algo, sizeof p->algo, "forward in %s's GEMM", strrchr(m->op[o->lead].name, '/') + 1);
    } else if (o->kind == OP_CONV) {
        int at = 0;
        for (int k = 0; k < (m->cfg.training ? CONV_PASSES : 1); k++) {
            ConvAlgo a = o->plan.algo[k];
            if (k == CONV_BWD_DATA && o->in == 0) /* the image needs no gradient */
                at += snprintf(p->algo + at, sizeof p->algo - at, " none");
            else if (a == CONV_GEMM)
                at += snprintf(p->algo + at, sizeof p->algo - at, "%s%s", k ? " " : "",
                               (k == CONV_FWD && conv_direct_applies(&o->conv)) ||
                                       (k == CONV_BWD_WEIGHTS && conv_direct_weights_applies(&o->conv))
                                   ? "direct"
                                   : "gemm");
            else at += snprintf(p->algo + at, sizeof p->algo - at, "%s%s.%d", k ? " " : "", conv_algo_name(a), o->plan.block[k]);
            if (at >= (int)sizeof p->algo) break;
        }
        if (o->ngroup > 1 && at < (int)sizeof p->algo)
            snprintf(p->algo + at, sizeof p->algo - at, " (+%d in its forward GEMM)", o->ngroup - 1);
        if (o->pooled >= 0) snprintf(p->algo, sizeof p->algo, "%s + gemm", m->op[o->pooled].name);
    }
    for (int k = 0, at = (int)strlen(p->algo); k < o->nfuse && at < (int)sizeof p->algo; k++)
        at += snprintf(p->algo + at, sizeof p->algo - at, "%s+ %s", at ? " " : "", m->op[o->fuse[k]].name);
}

/* ---- forward / backward ---- */

static uint64_t op_key(const Model *m, const Op *o)
{
    return rng_key(m->dropout_key, (uint64_t)(o - m->op), 0x64726f70ULL /* "drop" */, 0);
}

static void forward_op(Model *m, Op *o, int n, ModelStats *st)
{
    const Tensor *x = &m->t[o->in];
    Tensor *y = o->out >= 0 ? &m->t[o->out] : NULL;
    const float *w = o->w >= 0 ? m->params + m->pt[o->w].offset : NULL;
    const float *b = o->b >= 0 ? m->params + m->pt[o->b].offset : NULL;
    switch (o->kind) {
    case OP_CONV:
        if (o->ngroup > 1) {
            ConvOut outs[4];
            ConvShape gs = o->group_shape;
            for (int g = 0; g < o->ngroup; g++) {
                const Op *q = &m->op[o->group[g]];
                outs[g] = (ConvOut){m->t[q->out].data, m->params + m->pt[q->w].offset, m->params + m->pt[q->b].offset,
                                    q->conv.cout};
            }
            conv_forward_pointwise_many(outs, o->ngroup, x->data, &gs, n, 1, m->work, m->work_cap);
        } else if (o->nfuse) {
            LrnShape ls = LRN_PARAMS;
            const Op *p = &m->op[o->fuse[0]];
            fuse_conv_pool_lrn(m->t[m->op[o->fuse[1]].out].data, x->data, w, b, o->relu, &o->conv, &p->pool, &ls, n,
                               m->work, m->work_cap);
        } else if (o->pooled >= 0) {
            const Op *p = &m->op[o->pooled];
            conv_forward_pooled(y->data, m->t[p->in].data, &p->pool, w, b, &o->conv, n, o->relu, m->work, m->work_cap);
        } else if (o->lead < 0) {
            /* training's weights change every step: nothing to keep */
            conv_forward_cached(m->cfg.training ? NULL : &o->filters, y->data, x->data, w, b, &o->conv, n, o->relu,
                                &o->plan, m->work, m->work_cap);
        }
        break;
    case OP_MAXPOOL:
        if (m->mode == MODEL_TRAIN && o->arg) {
            pool_forward_argmax(y->data, o->arg, x->data, &o->pool, (long)x->c * n);
            break;
        }
        /* fall through */
    case OP_AVGPOOL:
        pool_forward(y->data, x->data, &o->pool, (long)x->c * n);
        break;
    case OP_LRN: {
        LrnShape s = LRN_PARAMS;
        if (o->nfuse) {
            const Op *p = &m->op[o->fuse[0]];
            fuse_lrn_pool(m->t[p->out].data, x->data, &s, &p->pool, x->c, n, m->work, m->work_cap);
            break;
        }
        s.c = x->c;
        s.plane = (size_t)n * x->h * x->w;
        lrn_forward(y->data, x->data, &s);
        break;
    }
    case OP_FLATTEN:
        fc_flatten_forward(y->data, x->data, x->c, n, x->h * x->w);
        break;
    case OP_FC:
        fc_forward(y->data, x->data, w, b, x->c, y->c, n, o->relu);
        break;
    case OP_DROPOUT:
        if (m->mode == MODEL_TRAIN)
            dropout_forward(y->data, x->data, (size_t)x->c * n, o->drop_rate, op_key(m, o));
        else
            memcpy(y->data, x->data, sizeof(float) * x->c * n);
        break;
    case OP_LOSS:
        if (m->has_labels)
            loss_softmax_xent(x->data, m->labels, x->c, n, NULL, 0.0f, &st->head[o->head]);
        break;
    case OP_KINDS:
        break;
    }
}

/* want_dx: the input's gradient is needed (0 for the network's input and for
 * a tensor only frozen layers made: model_backward_from). */
static void backward_op(Model *m, Op *o, int n, float loss_scale, int want_dx)
{
    Tensor *x = &m->t[o->in];
    Tensor *y = o->out >= 0 ? &m->t[o->out] : NULL;
    const float *w = o->w >= 0 ? m->params + m->pt[o->w].offset : NULL;
    float *dw = o->w >= 0 ? m->grads + m->pt[o->w].offset : NULL;
    float *db = o->b >= 0 ? m->grads + m->pt[o->b].offset : NULL;
    float *dx = want_dx ? x->diff : NULL;
    switch (o->kind) {
    case OP_CONV: {
        int i = (int)(o - m->op);
        conv_backward_bias(db, y->diff, o->relu ? y->data : NULL, &o->conv, n);
        double t0 = clock_now();
        conv_backward_weights(dw, y->diff, x->data, &o->conv, n, &o->plan, m->work, m->work_cap);
        double t1 = clock_now();
        if (dx) conv_backward_data(dx, y->diff, w, &o->conv, n, o->accum_dx, &o->plan, m->work, m->work_cap);
        m->conv_time[1][i] += t1 - t0;
        m->conv_time[0][i] += clock_now() - t1;
        break;
    }
    case OP_MAXPOOL:
        if (o->arg) {
            pool_backward_argmax(dx, y->diff, o->arg, &o->pool, (long)x->c * n, o->accum_dx);
            break;
        }
        /* fall through */
    case OP_AVGPOOL:
        pool_backward(dx, y->diff, x->data, y->data, &o->pool, (long)x->c * n, o->accum_dx);
        break;
    case OP_LRN: {
        LrnShape s = LRN_PARAMS;
        s.c = x->c;
        s.plane = (size_t)n * x->h * x->w;
        lrn_backward(dx, y->diff, x->data, &s, o->accum_dx);
        break;
    }
    case OP_FLATTEN:
        fc_flatten_backward(dx, y->diff, x->c, n, y->c / x->c, o->accum_dx);
        break;
    case OP_FC:
        if (o->relu) relu_backward(y->diff, y->data, (size_t)y->c * n);
        fc_backward(dx, dw, db, y->diff, x->data, w, x->c, y->c, n, o->accum_dx);
        break;
    case OP_DROPOUT:
        dropout_backward(dx, y->diff, (size_t)x->c * n, o->drop_rate, op_key(m, o), o->accum_dx);
        break;
    case OP_LOSS: {
        LossStats st;
        loss_softmax_xent(x->data, m->labels, x->c, n, x->diff, o->loss_weight * loss_scale, &st);
        assert(!o->accum_dx);
        break;
    }
    case OP_KINDS:
        break;
    }
}

/* A channel slice of a concatenation starts c_off * (n*h*w) floats into it:
 * where depends on the batch of this call. */
static void bind_views(Model *m, int n)
{
    for (int i = 0; i < m->nt; i++) {
        Tensor *t = &m->t[i];
        if (t->parent < 0) continue;
        const Tensor *p = &m->t[t->parent];
        size_t off = (size_t)t->c_off * n * t->h * t->w;
        t->data = p->data ? p->data + off : NULL;
        t->diff = p->diff ? p->diff + off : NULL;
    }
}

typedef struct {
    float *dst;
    const float *src;
    int n, c;
    size_t plane;
} InputJob;

static void load_input_range(void *ctx, long b, long e)
{
    const InputJob *j = ctx;
    for (long q = b; q < e; q++) {
        long i = q / j->c, c = q % j->c;
        memcpy(j->dst + ((size_t)c * j->n + i) * j->plane, j->src + (size_t)q * j->plane, sizeof(float) * j->plane);
    }
}

/* (n, 3, S, S) -> (3, n, S, S), a plane per item, on every thread */
static void load_input(Model *m, const float *input, int n)
{
    Tensor *t = &m->t[0];
    InputJob j = {t->data, input, n, t->c, (size_t)t->h * t->w};
    parallel_for((long)n * t->c, 1, load_input_range, &j);
}

void model_forward(Model *m, const float *input, const int *labels, int n, ModelMode mode,
                   uint64_t dropout_key, ModelStats *stats)
{
    assert(n >= 1 && n <= m->cfg.batch);
    assert(mode == MODEL_EVAL || (m->cfg.training && labels));
    ModelStats local;
    ModelStats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    st->n = n;
    m->n = n;
    m->mode = mode;
    m->dropout_key = dropout_key;
    m->has_labels = labels != NULL;
    if (labels) memcpy(m->labels, labels, sizeof(int) * n);
    bind_views(m, n);
    load_input(m, input, n);
    for (int i = 0; i < m->nop; i++) {
        Op *o = &m->op[i];
        if ((mode == MODEL_EVAL && o->head != 0) || o->fused_into >= 0) continue;
        double t0 = clock_now();
        forward_op(m, o, n, st);
        double dt = clock_now() - t0;
        m->prof[0][o->kind] += dt;
        m->op_time[0][i] += dt;
    }
    if (labels) {
        double total = 0;
        for (int i = 0; i < m->nop; i++) {
            const Op *o = &m->op[i];
            if (o->kind == OP_LOSS && (mode == MODEL_TRAIN || o->head == 0))
                total += o->loss_weight * st->head[o->head].loss_sum;
        }
        st->loss = total / n;
    }
}

void model_backward(Model *m, float loss_scale, ModelGradHook hook, void *hook_ctx)
{
    model_backward_from(m, 0, loss_scale, hook, hook_ctx);
}

/* Parameters are laid out in op order, so the ops owning parameters at or
 * after `from` are the ops from `first` on. An input's gradient is needed
 * only when one of those ops wrote (part of) that tensor; an op without
 * parameters whose input gradient is not needed does nothing useful. */
void model_backward_from(Model *m, size_t from, float loss_scale, ModelGradHook hook, void *hook_ctx)
{
    assert(m->mode == MODEL_TRAIN && m->cfg.training && m->has_labels);
    int first = m->nop;
    for (int i = 0; i < m->nop && first == m->nop; i++)
        if (m->op[i].w >= 0 && m->pt[m->op[i].w].offset >= from) first = i;
    unsigned char live[MAX_TENSORS] = {0}; /* by root tensor: written by an op from `first` on */
    for (int i = first; i < m->nop; i++)
        if (m->op[i].out >= 0) live[root_of(m, m->op[i].out)] = 1;
    for (int i = m->nop - 1; i >= first; i--) {
        Op *o = &m->op[i];
        int want_dx = live[root_of(m, o->in)];
        if (o->w < 0 && !want_dx) continue;
        double t0 = clock_now();
        backward_op(m, o, m->n, loss_scale, want_dx);
        double dt = clock_now() - t0;
        m->prof[1][o->kind] += dt;
        m->op_time[1][i] += dt;
        if (hook && o->w >= 0) hook(hook_ctx, m->pt[o->w].offset);
    }
}

/* ---- the convolution plan ---- */

static int op_has_choice(const Op *o)
{
    if (o->kind != OP_CONV) return 0;
    for (int a = CONV_GEMM + 1; a < CONV_ALGOS; a++)
        if (conv_algo_applies((ConvAlgo)a, &o->conv)) return 1;
    return 0;
}

int model_conv_plan_format(const Model *m, char *buf, size_t len)
{
    size_t at = 0;
    if (len) buf[0] = '\0';
    for (int i = 0; i < m->nop; i++) {
        const Op *o = &m->op[i];
        if (!op_has_choice(o)) continue;
        int w = snprintf(buf + at, len - at, "%s%s=", at ? ";" : "", o->name);
        for (int k = 0; k < CONV_PASSES && w >= 0 && at + w < len; k++) {
            ConvAlgo a = (ConvAlgo)o->plan.algo[k];
            if (a == CONV_GEMM) w += snprintf(buf + at + w, len - at - w, "%sgemm", k ? "," : "");
            else w += snprintf(buf + at + w, len - at - w, "%s%s.%d", k ? "," : "", conv_algo_name(a), o->plan.block[k]);
        }
        if (w < 0 || at + w >= len) return -1;
        at += (size_t)w;
    }
    return (int)at;
}

/* "f4x3.64" -> algorithm and block; -1 when malformed. */
static int parse_pass(const char *p, size_t len, ConvAlgo *a, int *block)
{
    char name[16];
    const char *dot = memchr(p, '.', len);
    size_t nl = dot ? (size_t)(dot - p) : len;
    if (nl == 0 || nl >= sizeof name) return -1;
    memcpy(name, p, nl);
    name[nl] = '\0';
    int ai = conv_algo_parse(name);
    if (ai < 0) return -1;
    *a = (ConvAlgo)ai;
    *block = 0;
    if (!dot) return ai == CONV_GEMM ? 0 : -1;
    for (const char *q = dot + 1; q < p + len; q++) {
        if (*q < '0' || *q > '9') return -1;
        *block = *block * 10 + (*q - '0');
        if (*block > UINT16_MAX) return -1; /* ConvPlan keeps blocks in 16 bits */
    }
    return dot + 1 < p + len ? 0 : -1;
}

int model_conv_plan_apply(Model *m, const char *plan, char *err, size_t errlen)
{
    ConvPlan next[MAX_OPS];
    char seen[MAX_OPS] = {0};
    for (int i = 0; i < m->nop; i++) next[i] = m->op[i].plan;
    for (const char *p = plan; *p;) {
        const char *end = strchr(p, ';'), *eq = strchr(p, '=');
        if (!end) end = p + strlen(p);
        if (!eq || eq > end) {
            snprintf(err, errlen, "convolution plan entry '%.*s' is not layer=algo.block,...", (int)(end - p), p);
            return -1;
        }
        int i = 0;
        while (i < m->nop && !(op_has_choice(&m->op[i]) && strlen(m->op[i].name) == (size_t)(eq - p) &&
                               strncmp(m->op[i].name, p, (size_t)(eq - p)) == 0))
            i++;
        if (i == m->nop) {
            snprintf(err, errlen, "convolution plan names '%.*s', not a layer of this model with a choice of algorithm",
                     (int)(eq - p), p);
            return -1;
        }
        const char *q = eq + 1;
        for (int k = 0; k < CONV_PASSES; k++) {
            const char *c = memchr(q, ',', (size_t)(end - q));
            const char *stop = c && k < CONV_PASSES - 1 ? c : end;
            ConvAlgo a;
            int block;
            if (parse_pass(q, (size_t)(stop - q), &a, &block) != 0 || (k < CONV_PASSES - 1 && !c)) {
                snprintf(err, errlen, "convolution plan entry for %s is not algo.block,algo.block,algo.block",
                         m->op[i].name);
                return -1;
            }
            next[i].algo[k] = (uint8_t)a;
            next[i].block[k] = (uint16_t)block;
            q = stop + 1;
        }
        if (conv_plan_valid(&next[i], &m->op[i].conv) != 0) {
            snprintf(err, errlen, "convolution plan for %s cannot run it (algorithm or block size)", m->op[i].name);
            return -1;
        }
        seen[i] = 1;
        p = *end ? end + 1 : end;
    }
    for (int i = 0; i < m->nop; i++)
        if (op_has_choice(&m->op[i]) && !seen[i]) {
            snprintf(err, errlen, "convolution plan does not name %s", m->op[i].name);
            return -1;
        }
    for (int i = 0; i < m->nop; i++) m->op[i].plan = next[i];
    return work_alloc(m, err, errlen);
}

/* One run of one pass of conv o under plan p, in seconds. An inference
 * model's forward runs as it will run, with its filters prepared beforehand
 * (fc: that algorithm's cache, so candidates taking turns keep theirs). */
static double time_pass(Model *m, Op *o, ConvPass pass, const ConvPlan *p, ConvFilterCache *fc)
{
    Tensor *x = &m->t[o->in], *y = &m->t[o->out];
    const float *w = m->params + m->pt[o->w].offset, *b = m->params + m->pt[o->b].offset;
    float *dw = m->grads + m->pt[o->w].offset;
    int n = m->cfg.batch;
    double t0 = clock_now();
    if (pass == CONV_FWD)
        conv_forward_cached(m->cfg.training ? NULL : fc, y->data, x->data, w, b, &o->conv, n, o->relu, p, m->work,
                            m->work_cap);
    else if (pass == CONV_BWD_DATA)
        conv_backward_data(x->diff, y->diff, w, &o->conv, n, 0, p, m->work, m->work_cap);
    else
        conv_backward_weights(dw, y->diff, x->data, &o->conv, n, p, m->work, m->work_cap);
    return clock_now() - t0;
}

/* Timed rounds per candidate, after one untimed round. The candidates take
 * turns, round by round, and each keeps its best: a burst of other work on
 * the machine then slows a round of every candidate, not all the runs of one. */
#define TUNE_ROUNDS 2

/* The fastest of nc candidates for pass k of conv o, starting from plan base. */
static ConvPlan tune_pass(Model *m, Op *o, ConvPass k, ConvPlan base, const ConvAlgo *algo, const int *block,
                          int nc)
{
    ConvFilterCache fc[CONV_ALGOS] = {{0}};
    double best[24];
    ConvPlan p[24];
    for (int c = 0; c < nc; c++) {
        p[c] = base;
        p[c].algo[k] = (uint8_t)algo[c];
        p[c].block[k] = (uint16_t)block[c];
        best[c] = 1e30;
    }
    for (int r = 0; r <= TUNE_ROUNDS; r++)
        for (int c = 0; c < nc; c++) {
            double t = time_pass(m, o, k, &p[c], &fc[algo[c]]);
            if (r > 0 && t < best[c]) best[c] = t;
        }
    for (int a = 0; a < CONV_ALGOS; a++) conv_filter_cache_free(&fc[a]);
    int win = 0;
    for (int c = 1; c < nc; c++)
        if (best[c] < best[win]) win = c;
    return p[win];
}

/* Candidates of one pass: GEMM, and each Winograd algorithm that applies with
 * half, once, 2, 4 and 8 times its default block (at most 1024 tiles): a
 * larger block makes larger GEMMs, a smaller one keeps them in cache. */
static int candidates(const Op *o, ConvPass pass, int n, ConvAlgo *algo, int *block)
{
    int c = 0;
    algo[c] = CONV_GEMM;
    block[c++] = 0;
    for (int a = CONV_GEMM + 1; a < CONV_ALGOS; a++) {
        if (!conv_algo_applies((ConvAlgo)a, &o->conv)) continue;
        int d = conv_default_block((ConvAlgo)a, &o->conv, n, pass);
        int tries[5] = {d / 2 / 16 * 16, d, 2 * d, 4 * d, 8 * d};
        for (int t = 0; t < 5; t++) {
            if (tries[t] > 1024) tries[t] = 1024;
            if (tries[t] < 16 || (t > 0 && tries[t] == tries[t - 1])) continue;
            algo[c] = (ConvAlgo)a;
            block[c++] = tries[t];
        }
    }
    return c;
}

double model_conv_tune(Model *m, char *err, size_t errlen)
{
    double t0 = clock_now();
    int n = m->cfg.batch, passes = m->cfg.training ? CONV_PASSES : 1;
    ConvAlgo algo[24];
    int block[24];
    /* scratch for the largest candidate */
    size_t need = m->work_cap;
    for (int i = 0; i < m->nop; i++) {
        const Op *o = &m->op[i];
        if (!op_has_choice(o) || !op_planned(m, o)) continue;
        for (int k = 0; k < passes; k++) {
            int nc = candidates(o, (ConvPass)k, n, algo, block);
            for (int c = 0; c < nc; c++) {
                ConvPlan p = {{algo[c], algo[c], algo[c]}, {block[c], block[c], block[c]}};
                size_t f = conv_work_floats(&o->conv, &p, n, parallel_threads(), m->cfg.training);
                if (f > need) need = f;
            }
        }
    }
    if (need > m->work_cap && work_resize(m, need, "scratch to time the convolution algorithms", err, errlen) != 0)
        return -1;
    /* benign data: zeros take the same time as any other numbers here */
    memset(m->arena, 0, m->arena_floats * sizeof(float));
    bind_views(m, n);
    for (int i = 0; i < m->nop; i++) {
        Op *o = &m->op[i];
        if (!op_has_choice(o) || !op_planned(m, o)) continue;
        ConvPlan best = o->plan;
        for (int k = 0; k < passes; k++) {
            if (k == CONV_BWD_DATA && o->in == 0) continue;
            int nc = candidates(o, (ConvPass)k, n, algo, block);
            best = tune_pass(m, o, (ConvPass)k, best, algo, block, nc);
        }
        o->plan = best;
    }
    memset(m->grads, 0, m->nparams * sizeof(float));
    /* shrink the scratch to what the chosen plan needs */
    free(m->work);
    m->work = NULL;
    m->work_cap = 0;
    if (work_alloc(m, err, errlen) != 0) return -1;
    return clock_now() - t0;
}

/* ---- activations, for tests against another implementation ---- */
int model_tensor_count(const Model *m) { return m->nt; }

const char *model_tensor_info(const Model *m, int i, int *c, int *h, int *w)
{
    if (i < 0 || i >= m->nt) return NULL;
    *c = m->t[i].c;
    *h = m->t[i].h;
    *w = m->t[i].w;
    return m->t[i].name;
}

const float *model_tensor_data(const Model *m, int i)
{
    return i >= 0 && i < m->nt ? m->t[i].data : NULL;
}

/* ---- the graph, read-only, for exporters ---- */
void model_op_info(const Model *m, int i, ModelOpInfo *info)
{
    assert(i >= 0 && i < m->nop);
    const Op *o = &m->op[i];
    memset(info, 0, sizeof *info);
    info->kind = o->kind;
    info->name = o->name;
    info->in = o->in;
    info->out = o->out;
    info->head = o->head;
    info->relu = o->relu;
    info->weight = o->w;
    info->bias = o->b;
    info->drop_rate = o->drop_rate;
    info->loss_weight = o->loss_weight;
    info->conv = o->conv;
    info->pool = o->pool;
    if (o->kind == OP_LRN) info->lrn = LRN_PARAMS;
}

int model_tensor_parent(const Model *m, int i, int *c_off)
{
    if (i < 0 || i >= m->nt) return -1;
    *c_off = m->t[i].c_off;
    return m->t[i].parent;
}
