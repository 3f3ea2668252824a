/* cmd/bench_ckpt.h: `googlenet bench ckpt` (also `googlenet ckpt bench`):
 * what checkpointing costs: compression ratios of the state and the training
 * stall per checkpoint of the asynchronous writer against one training step
 * (train_step, the one `train` runs). */
#ifndef TRAINER_CMD_BENCH_CKPT_H
#define TRAINER_CMD_BENCH_CKPT_H

/* The arguments after "bench ckpt"; returns the exit code (commands.h). */
int cmd_bench_ckpt(int argc, char **argv);

#endif
