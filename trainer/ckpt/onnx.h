/* ckpt/onnx.h: a checkpoint's inference network as an ONNX model
 * (`googlenet ckpt export FILE --format onnx`).
 *
 * The graph is derived from nn/model.h's read-only view of the network (ops,
 * tensors, parameters), never written down here: the main path only (the aux
 * heads are training devices), with dropout removed as inference does. The
 * interface is fixed so that any ONNX client can use the file without reading
 * this project's code:
 *   input  `input`  float32 [N, 3, crop, crop], RGB in 0..1; N is dynamic;
 *   output `prob`   float32 [N, classes], the softmax;
 *   output `logits` float32 [N, classes], only when asked for.
 * The checkpoint's input normalisation is applied inside the model by a Sub and
 * a Div node, data = (input - mean) / std, exactly as the evaluation transform
 * computes it. Opset 13, IR version 7. Class names, the normalisation and the
 * checkpoint's step and digest go into the model's metadata_props. Every
 * intermediate tensor is named as in nn/model.c (Caffe's layer names) and its
 * shape written as value_info, so a client's shape inference can be checked
 * against ours.
 *
 * Every function returns a status and writes one line into err[errlen] on
 * failure; nothing here prints or exits, and a failed export leaves no file.
 */
#ifndef TRAINER_CKPT_ONNX_H
#define TRAINER_CKPT_ONNX_H

#include <stddef.h>

#include "nn/model.h"
#include "trainer/ckpt/protobuf.h"

#define ONNX_OPSET 13
#define ONNX_IR_VERSION 7

typedef struct {
    float mean[3], std[3];    /* RGB on 0..1: data = (input - mean) / std */
    int logits;               /* 1: a second output `logits` */
    const char *const *meta;  /* key, value, key, value, ... (metadata_props) */
    int nmeta;                /* pairs */
} OnnxModelInfo;

/* Appends to out the ModelProto of m's main path with parameters params
 * (model_num_params(m) floats, in m's parameter order). m may be any model
 * (training or not, any batch); only its structure and crop are read.
 * Returns 0, or -1 when an op has no exact ONNX equivalent (named in err) or
 * memory ran out. */
int onnx_model_encode(const Model *m, const float *params, const OnnxModelInfo *info, PbBuf *out, char *err,
                      size_t errlen);

typedef struct {
    int average; /* 1: the Polyak average (the paper's final model); 0: the raw weights */
    int crop;    /* input size; 0: the checkpoint's */
    int logits;  /* add the `logits` output */
} OnnxExportOptions;

/* Verifies checkpoint `ckpt` (every checksum), reads the weights chosen and
 * writes the model to `out` atomically (temporary file and rename). summary
 * gets one line for the user (what was written). */
int ckpt_onnx_export(const char *ckpt, const char *out, const OnnxExportOptions *o, char *summary, size_t sumlen,
                     char *err, size_t errlen);

#endif
