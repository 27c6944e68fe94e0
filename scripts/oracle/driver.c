// Oracle driver: runs ggml's own block codecs on raw little-endian files.
//
// Built by scripts/gen-oracle-vectors.sh against the real ggml-base sources of the
// llama-cpp-python sdist (ggml.c, ggml-quants.c, ...), with `-O2 -ffp-contract=off` and no
// -march (x86-64 baseline). It contains no codec arithmetic of its own except Q8_1
// dequantization, which ggml does not provide (its dequantize_row_q8_1 is commented out);
// there it evaluates ggml's block_q8_1 layout as d·q with ggml's own fp16 conversion,
// written like ggml's dequantize_row_q8_0.
//
// Usage (N = number of elements; files are raw; outputs are zero-filled before the call):
//   driver info                                   print ggml version and commit, then one
//                                                 line "type NAME ID BLOCK_SIZE TYPE_SIZE"
//                                                 per type ggml knows
//   driver ref   TYPE N in.f32 out.bin            quantize_row_<type>_ref (F16/BF16: ggml row
//                                                 converters; F32: copy)
//   driver chunk TYPE N ROW in.f32 out.bin IMAT   ggml_quantize_chunk over N/ROW rows of ROW
//                                                 elements; IMAT=1 passes an all-ones
//                                                 importance matrix, IMAT=0 passes NULL
//   driver deq   TYPE N in.bin out.f32            dequantize_row_<type> (F16/BF16: ggml row
//                                                 converters; F32: copy; Q8_1: see above)
//   driver batch JOBS                             runs each line of the file JOBS (one of the
//                                                 three commands above, without "driver") in
//                                                 this process, so IQ grids are built once;
//                                                 prints "done <line number>" after each job
// TYPE is ggml's type name, case-insensitive (q4_K, IQ2_XXS, f16, ...).

#include "ggml.h"
#include "ggml-common.h"
#include "ggml-quants.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void die(const char * msg, const char * arg) {
    fprintf(stderr, "driver: %s%s\n", msg, arg ? arg : "");
    exit(2);
}

static enum ggml_type parse_type(const char * name) {
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char * n = ggml_type_name((enum ggml_type) t);
        if (n && strcasecmp(n, name) == 0 && ggml_blck_size((enum ggml_type) t) > 0) {
            return (enum ggml_type) t;
        }
    }
    die("unknown type ", name);
    return GGML_TYPE_COUNT;
}

static void * read_file(const char * path, size_t want) {
    FILE * f = fopen(path, "rb");
    if (!f) die("cannot open ", path);
    void * buf = malloc(want ? want : 1);
    if (!buf) die("out of memory", NULL);
    size_t got = fread(buf, 1, want, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != want || extra != EOF) die("wrong input size: ", path);
    return buf;
}

static void write_file(const char * path, const void * buf, size_t n) {
    FILE * f = fopen(path, "wb");
    if (!f) die("cannot create ", path);
    if (fwrite(buf, 1, n, f) != n) die("cannot write ", path);
    if (fclose(f) != 0) die("cannot close ", path);
}

static size_t n_bytes(enum ggml_type t, int64_t n) {
    int64_t bs = ggml_blck_size(t);
    if (n <= 0 || n % bs != 0) die("element count is not whole blocks", NULL);
    return (size_t) (n / bs) * ggml_type_size(t);
}

static void quantize_ref(enum ggml_type t, const float * x, void * y, int64_t n) {
    switch (t) {
        case GGML_TYPE_F32:  memcpy(y, x, (size_t) n * sizeof(float)); break;
        case GGML_TYPE_F16:  ggml_fp32_to_fp16_row(x, (ggml_fp16_t *) y, n); break;
        case GGML_TYPE_BF16: ggml_fp32_to_bf16_row_ref(x, (ggml_bf16_t *) y, n); break;
        case GGML_TYPE_Q4_0: quantize_row_q4_0_ref(x, (block_q4_0 *) y, n); break;
        case GGML_TYPE_Q4_1: quantize_row_q4_1_ref(x, (block_q4_1 *) y, n); break;
        case GGML_TYPE_Q5_0: quantize_row_q5_0_ref(x, (block_q5_0 *) y, n); break;
        case GGML_TYPE_Q5_1: quantize_row_q5_1_ref(x, (block_q5_1 *) y, n); break;
        case GGML_TYPE_Q8_0: quantize_row_q8_0_ref(x, (block_q8_0 *) y, n); break;
        case GGML_TYPE_Q8_1: quantize_row_q8_1_ref(x, (block_q8_1 *) y, n); break;
        case GGML_TYPE_Q2_K: quantize_row_q2_K_ref(x, (block_q2_K *) y, n); break;
        case GGML_TYPE_Q3_K: quantize_row_q3_K_ref(x, (block_q3_K *) y, n); break;
        case GGML_TYPE_Q4_K: quantize_row_q4_K_ref(x, (block_q4_K *) y, n); break;
        case GGML_TYPE_Q5_K: quantize_row_q5_K_ref(x, (block_q5_K *) y, n); break;
        case GGML_TYPE_Q6_K: quantize_row_q6_K_ref(x, (block_q6_K *) y, n); break;
        case GGML_TYPE_Q8_K: quantize_row_q8_K_ref(x, (block_q8_K *) y, n); break;
        default: die("no reference quantizer for ", ggml_type_name(t));
    }
}

static void dequantize(enum ggml_type t, const void * x, float * y, int64_t n) {
    switch (t) {
        case GGML_TYPE_F32:     memcpy(y, x, (size_t) n * sizeof(float)); break;
        case GGML_TYPE_F16:     ggml_fp16_to_fp32_row((const ggml_fp16_t *) x, y, n); break;
        case GGML_TYPE_BF16:    ggml_bf16_to_fp32_row((const ggml_bf16_t *) x, y, n); break;
        case GGML_TYPE_Q4_0:    dequantize_row_q4_0((const block_q4_0 *) x, y, n); break;
        case GGML_TYPE_Q4_1:    dequantize_row_q4_1((const block_q4_1 *) x, y, n); break;
        case GGML_TYPE_Q5_0:    dequantize_row_q5_0((const block_q5_0 *) x, y, n); break;
        case GGML_TYPE_Q5_1:    dequantize_row_q5_1((const block_q5_1 *) x, y, n); break;
        case GGML_TYPE_Q8_0:    dequantize_row_q8_0((const block_q8_0 *) x, y, n); break;
        case GGML_TYPE_Q8_1: {
            // ggml has no dequantize_row_q8_1: evaluate the block_q8_1 layout as d·q.
            const block_q8_1 * b = (const block_q8_1 *) x;
            for (int64_t i = 0; i < n / QK8_1; i++) {
                const float d = ggml_fp16_to_fp32(b[i].d);
                for (int j = 0; j < QK8_1; j++) {
                    y[i * QK8_1 + j] = b[i].qs[j] * d;
                }
            }
        } break;
        case GGML_TYPE_Q2_K:    dequantize_row_q2_K((const block_q2_K *) x, y, n); break;
        case GGML_TYPE_Q3_K:    dequantize_row_q3_K((const block_q3_K *) x, y, n); break;
        case GGML_TYPE_Q4_K:    dequantize_row_q4_K((const block_q4_K *) x, y, n); break;
        case GGML_TYPE_Q5_K:    dequantize_row_q5_K((const block_q5_K *) x, y, n); break;
        case GGML_TYPE_Q6_K:    dequantize_row_q6_K((const block_q6_K *) x, y, n); break;
        case GGML_TYPE_Q8_K:    dequantize_row_q8_K((const block_q8_K *) x, y, n); break;
        case GGML_TYPE_IQ2_XXS: dequantize_row_iq2_xxs((const block_iq2_xxs *) x, y, n); break;
        case GGML_TYPE_IQ2_XS:  dequantize_row_iq2_xs((const block_iq2_xs *) x, y, n); break;
        case GGML_TYPE_IQ3_XXS: dequantize_row_iq3_xxs((const block_iq3_xxs *) x, y, n); break;
        case GGML_TYPE_IQ1_S:   dequantize_row_iq1_s((const block_iq1_s *) x, y, n); break;
        case GGML_TYPE_IQ4_NL:  dequantize_row_iq4_nl((const block_iq4_nl *) x, y, n); break;
        case GGML_TYPE_IQ3_S:   dequantize_row_iq3_s((const block_iq3_s *) x, y, n); break;
        case GGML_TYPE_IQ2_S:   dequantize_row_iq2_s((const block_iq2_s *) x, y, n); break;
        case GGML_TYPE_IQ4_XS:  dequantize_row_iq4_xs((const block_iq4_xs *) x, y, n); break;
        case GGML_TYPE_IQ1_M:   dequantize_row_iq1_m((const block_iq1_m *) x, y, n); break;
        case GGML_TYPE_TQ1_0:   dequantize_row_tq1_0((const block_tq1_0 *) x, y, n); break;
        case GGML_TYPE_TQ2_0:   dequantize_row_tq2_0((const block_tq2_0 *) x, y, n); break;
        case GGML_TYPE_MXFP4:   dequantize_row_mxfp4((const block_mxfp4 *) x, y, n); break;
        case GGML_TYPE_NVFP4:   dequantize_row_nvfp4((const block_nvfp4 *) x, y, n); break;
        case GGML_TYPE_Q1_0:    dequantize_row_q1_0((const block_q1_0 *) x, y, n); break;
        case GGML_TYPE_Q2_0:    dequantize_row_q2_0((const block_q2_0 *) x, y, n); break;
        default: die("no dequantizer for ", ggml_type_name(t));
    }
}

static void run(int argc, char ** argv) {
    if (argc < 3) die("usage: see the header of scripts/oracle/driver.c", NULL);
    const char * op = argv[0];
    enum ggml_type t = parse_type(argv[1]);
    int64_t n = strtoll(argv[2], NULL, 10);
    size_t nb = n_bytes(t, n);
    if (strcmp(op, "ref") == 0 && argc == 5) {
        float * x = read_file(argv[3], (size_t) n * sizeof(float));
        void * y = calloc(nb, 1);
        if (!y) die("out of memory", NULL);
        quantize_ref(t, x, y, n);
        write_file(argv[4], y, nb);
        free(x);
        free(y);
    } else if (strcmp(op, "chunk") == 0 && argc == 7) {
        int64_t row = strtoll(argv[3], NULL, 10);
        if (row <= 0 || n % row != 0 || row % ggml_blck_size(t) != 0) die("bad row length", NULL);
        float * x = read_file(argv[4], (size_t) n * sizeof(float));
        void * y = calloc(nb, 1);
        float * imat = NULL;
        if (!y) die("out of memory", NULL);
        if (strcmp(argv[6], "1") == 0) {
            imat = malloc((size_t) row * sizeof(float));
            if (!imat) die("out of memory", NULL);
            for (int64_t i = 0; i < row; i++) imat[i] = 1.0f;
        }
        size_t written = ggml_quantize_chunk(t, x, y, 0, n / row, row, imat);
        if (written != nb) die("ggml_quantize_chunk wrote an unexpected size", NULL);
        write_file(argv[5], y, nb);
        free(x);
        free(y);
        free(imat);
    } else if (strcmp(op, "deq") == 0 && argc == 5) {
        void * x = read_file(argv[3], nb);
        float * y = calloc((size_t) n, sizeof(float));
        if (!y) die("out of memory", NULL);
        dequantize(t, x, y, n);
        write_file(argv[4], y, (size_t) n * sizeof(float));
        free(x);
        free(y);
    } else {
        die("bad arguments for ", op);
    }
}

int main(int argc, char ** argv) {
    if (argc == 2 && strcmp(argv[1], "info") == 0) {
        printf("ggml_version=%s\nggml_commit=%s\n", ggml_version(), ggml_commit());
        for (int t = 0; t < GGML_TYPE_COUNT; t++) {
            const char * name = ggml_type_name((enum ggml_type) t);
            int64_t bs = ggml_blck_size((enum ggml_type) t);
            if (name && bs > 0) {
                printf("type %s %d %lld %zu\n", name, t, (long long) bs, ggml_type_size((enum ggml_type) t));
            }
        }
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "batch") == 0) {
        FILE * f = fopen(argv[2], "r");
        if (!f) die("cannot open ", argv[2]);
        char line[4096];
        int lineno = 0;
        while (fgets(line, sizeof line, f)) {
            lineno++;
            char * args[16];
            int nargs = 0;
            for (char * tok = strtok(line, " \t\r\n"); tok && nargs < 16; tok = strtok(NULL, " \t\r\n")) {
                args[nargs++] = tok;
            }
            if (nargs == 0) continue;
            run(nargs, args);
            printf("done %d\n", lineno);
            fflush(stdout);
        }
        fclose(f);
        return 0;
    }
    run(argc - 1, argv + 1);
    return 0;
}
