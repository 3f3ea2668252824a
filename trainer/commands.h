/* commands.h: the subcommands of bin/googlenet, one file each in trainer/cmd/.
 * Each takes the arguments after its name and returns the process exit code. */
#ifndef TRAINER_COMMANDS_H
#define TRAINER_COMMANDS_H

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv); /* in cmd/predict.c: eval's pipeline on single images */
int cmd_bench(int argc, char **argv);
int cmd_bench_loader(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_ckpt(int argc, char **argv);

/* A row of main.c's command table, which `googlenet --help` lists and the man
 * page generator (trainer/man.h) walks. */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

/* Exit codes shared by every subcommand (docs/commands.md). */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,        /* a run-time error: message on stderr */
    EXIT_USAGE = 2,       /* a bad flag or impossible combination */
    EXIT_PREEMPTED = 3,   /* SIGTERM/SIGINT: stopped cleanly after a checkpoint */
};

#endif
