/* model.h: GoogLeNet (Szegedy et al. 2015, Caffe's bvlc_googlenet) with both
 * auxiliary classifiers, built from one table of module specs.
 *
 * Parameters, gradients, momentum and the Polyak average each live in one
 * contiguous buffer; param_tensors() maps names to slices of it, in the order
 * of the layers (Caffe's prototxt order: weight then bias of each layer).
 * Activations and scratch are planned from the layers' lifetimes and allocated
 * once by model_init; forward and backward never allocate.
 *
 * Activations are channel-major, (C, N, H, W). The input batch is the usual
 * (N, 3, H, W). Maths only: no files, no MPI.
 */
#ifndef NN_MODEL_H
#define NN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "nn/conv.h"
#include "nn/loss.h"
#include "nn/lrn.h"
#include "nn/pool.h"

typedef struct {
    int classes;        /* outputs of the three classifiers (1000) */
    int crop;           /* input height = width (224) */
    int batch;          /* the largest n forward will be given */
    int aux;            /* 1: the two auxiliary heads exist (their parameters too) */
    int training;       /* 1: plan memory for backward; 0: inference only */
    float head_dropout; /* 0.4 in the paper */
    float aux_dropout;  /* 0.7 in the paper */
    int conv_gemm;      /* 1: every convolution by GEMM; 0: Winograd where it applies
                           (the starting plan; model_conv_tune or a given plan may change it) */
    int keep_activations; /* 1: every activation survives a MODEL_TRAIN forward (tests that
                             read them); 0: those backward does not read are reused early */
    int no_fuse;        /* inference models: 1 runs every layer on its own; 0 (default) runs
                           chains of memory-bound layers in one pass (nn/fuse.h), whose
                           inner tensors then get no memory. Training and keep_activations
                           never fuse. The same bits either way. */
} ModelConfig;

/* The paper's settings: 1000 classes, crop 224, aux heads, dropout 0.4/0.7. */
ModelConfig model_default_config(void);

typedef struct {
    char name[48];     /* "inception_3a/3x3_reduce/weight" */
    size_t offset;     /* into the parameter buffer, in floats */
    size_t count;
    int shape[4];      /* (out, in, k, k), (out, in) or (out) */
    int ndim;
    int fan_in;
    int is_bias;
    int head;          /* 0 main path, 1 aux1 (loss1), 2 aux2 (loss2) */
    float lr_mult;     /* weights 1, biases 2 */
    float decay_mult;  /* weights 1, biases 0 */
    float bias_value;  /* constant initial value of a bias: 0.2, or 0 for classifiers */
} ParamTensor;

typedef enum { MODEL_TRAIN, MODEL_EVAL } ModelMode;

enum { MODEL_HEAD_MAIN = 0, MODEL_HEAD_AUX1 = 1, MODEL_HEAD_AUX2 = 2, MODEL_HEADS = 3 };

typedef struct {
    LossStats head[MODEL_HEADS]; /* per head: loss sum, top-1, top-5 over the batch */
    double loss;                 /* mean over the batch of main + 0.3 aux1 + 0.3 aux2 */
    int n;
} ModelStats;

/* Called during backward with the lowest parameter offset whose gradient is
 * final: [ready_from, num_params) may be communicated. Offsets only decrease. */
typedef void (*ModelGradHook)(void *ctx, size_t ready_from);

/* Layer kinds, for profiles. */
typedef enum {
    OP_CONV, OP_MAXPOOL, OP_AVGPOOL, OP_LRN, OP_FLATTEN, OP_FC, OP_DROPOUT, OP_LOSS, OP_KINDS
} OpKind;
const char *model_op_kind_name(OpKind k);

typedef struct Model Model;

/* Checks the configuration (e.g. a crop too small for the network) and plans
 * and allocates everything. Returns NULL with a one-line message in err. */
Model *model_init(const ModelConfig *cfg, char *err, size_t errlen);
void model_free(Model *m);

const ModelConfig *model_config(const Model *m);
size_t model_num_params(const Model *m);
const ParamTensor *model_param_tensors(const Model *m, int *count);
float *model_params(Model *m);    /* (num_params) */
float *model_grads(Model *m);     /* (num_params) */
/* Caffe's xavier (uniform +-sqrt(3 / fan_in)) and constant biases, a pure
 * function of the seed. */
void model_init_weights(Model *m, uint64_t seed);
/* Bytes of activations and scratch planned by model_init. */
size_t model_activation_bytes(const Model *m);
/* Multiply-adds of one forward pass of n images (main path only when eval). */
double model_forward_macs(const Model *m, int n, ModelMode mode);
/* Multiply-adds of one training step (forward + backward) of n images. */
double model_train_macs(const Model *m, int n);
/* Shape (C, H, W) of the named activation ("inception_3a/output", "pool5/7x7_s1");
 * 0 when found, -1 otherwise. */
int model_tensor_shape(const Model *m, const char *name, int *c, int *h, int *w);
/* The smallest crop the network accepts (with aux heads: 4a must be at least 4x4). */
int model_min_crop(int aux);

/* ---- the convolution plan (nn/conv.h): which algorithm runs each pass ----
 * Only convolutions where more than GEMM applies (3x3 and 5x5, stride 1) have
 * a choice. A plan is text, "conv2/3x3=f4x3.64,f4x3.64,f4x3.256;...", one entry
 * per such layer (forward, backward data, backward weights; algorithm.block),
 * so that a trainer can broadcast it and keep it in a checkpoint: the same plan
 * gives the same bits. */

/* Writes the plan; returns its length, or -1 when it does not fit in len. */
int model_conv_plan_format(const Model *m, char *buf, size_t len);
/* Replaces the plan by a formatted one; it must name every layer with a
 * choice. Reallocates the scratch. 0, or -1 with a one-line message. */
int model_conv_plan_apply(Model *m, const char *plan, char *err, size_t errlen);
/* Times every candidate (GEMM; each Winograd algorithm with several block sizes)
 * of every pass the model runs, on its real shapes and batch, and keeps the
 * fastest: FFTW's planner, cuDNN's algorithm search. Overwrites activations
 * and zeroes the gradient buffer: call it before training. Returns the
 * seconds it took, or -1 with a message (out of memory). */
double model_conv_tune(Model *m, char *err, size_t errlen);

/* input: (n, 3, crop, crop), n <= batch. labels: n class indices, or NULL in
 * MODEL_EVAL (no loss). dropout_key seeds dropout (MODEL_TRAIN only). */
void model_forward(Model *m, const float *input, const int *labels, int n, ModelMode mode,
                   uint64_t dropout_key, ModelStats *stats);
/* After a MODEL_TRAIN forward: adds d(loss * loss_scale)/d(params) to the
 * gradient buffer, where loss = sum over the batch of main + 0.3 aux1 + 0.3 aux2
 * (loss_scale = 1 / global batch gives the mean). hook may be NULL. */
void model_backward(Model *m, float loss_scale, ModelGradHook hook, void *hook_ctx);
/* The same with the parameters [0, from) frozen (fine-tuning): their gradients
 * are neither computed nor written, and ops that lead only to them are
 * skipped. `from` lies between layers: the offset of a weight tensor in the
 * table (or num_params). The hook never sees an offset below it. from = 0 is
 * model_backward, bit for bit. */
void model_backward_from(Model *m, size_t from, float loss_scale, ModelGradHook hook, void *hook_ctx);
/* Logits of a head from the last forward: (classes, n), column i = sample i. */
const float *model_logits(const Model *m, int head);

/* Wall seconds spent per layer kind since the last reset, in forward and in backward. */
void model_profile(const Model *m, double forward[OP_KINDS], double backward[OP_KINDS]);
void model_profile_reset(Model *m);

/* The same per layer, in forward order. */
typedef struct {
    const char *name;
    OpKind kind;
    double forward_s, backward_s;
    double backward_data_s, backward_weights_s; /* convolutions: the two GEMM parts of backward_s */
    double forward_macs_per_image, backward_macs_per_image;
    char algo[48]; /* convolutions: the plan, "f4x3.64 f4x3.64 f4x3.256" (passes), else "";
                      a fused chain's first layer adds "+ pool1/3x3_s2 + ...", the others
                      say "fused into conv1/7x7_s2"; a 1x1 convolution that pools its
                      input itself says "inception_3a/pool + gemm" */
    int fused_into; /* the op whose forward computes this one's (its time is there), or -1 */
} ModelOpProfile;
int model_num_ops(const Model *m);
void model_op_profile(const Model *m, int i, ModelOpProfile *p);

/* The activations, for tests that hold them against another implementation:
 * tensor i's name and shape (C, H, W), and its data, (C, n, H, W) for the n of
 * the last forward. After a MODEL_TRAIN forward of a model made with
 * keep_activations every tensor is intact until backward starts; otherwise,
 * and after MODEL_EVAL, a plan may have reused a tensor's memory for a later
 * one. NULL: no such tensor, or no memory planned for it (the inner tensors of
 * a fused chain in an inference model: make it with keep_activations or
 * no_fuse to read them). */
int model_tensor_count(const Model *m);
const char *model_tensor_info(const Model *m, int i, int *c, int *h, int *w);
const float *model_tensor_data(const Model *m, int i);

/* ---- the graph, read-only, for exporters (trainer/ckpt/onnx.c) ----
 * Op i (forward order, as model_num_ops counts them) computes tensor `out` from
 * tensor `in` (model_tensor_info) with the parameters `weight` and `bias`
 * (indices into model_param_tensors). A tensor with a parent is channels
 * [c_off, c_off + c) of it: an inception branch writes its slice of the
 * module's concatenation in place. Derived from the table like everything
 * else, so an exporter never writes the architecture down a second time. */
typedef struct {
    OpKind kind;
    const char *name;
    int in, out;     /* tensors; out = -1 for a loss */
    int head;        /* MODEL_HEAD_MAIN, _AUX1, _AUX2 */
    int relu;        /* OP_CONV, OP_FC: ReLU on the output */
    int weight, bias;/* parameter tensors, or -1 */
    float drop_rate;   /* OP_DROPOUT: the rate */
    float loss_weight; /* OP_LOSS: the loss weight */
    ConvShape conv;  /* OP_CONV */
    PoolShape pool;  /* OP_MAXPOOL, OP_AVGPOOL */
    LrnShape lrn;    /* OP_LRN: size, alpha, beta, k (c and plane unset) */
} ModelOpInfo;
void model_op_info(const Model *m, int i, ModelOpInfo *info);
/* The tensor tensor i is a channel slice of, or -1; *c_off its first channel. */
int model_tensor_parent(const Model *m, int i, int *c_off);

#endif
