/* embedding.c: the embedding table's gradient, a scatter-add of rows.
 *
 * Shape legend: N looked-up positions (every leading axis of the ids flattened), C features,
 * V rows in the table. ids (N,) int64 in [0, V); dout (N, C) contiguous; dweight (V, C).
 *
 *     dweight[v] = sum over n with ids[n] == v of dout[n]
 *
 * NumPy says it as np.add.at(dweight, ids, dout), which goes through a generic per-element
 * path (about 1 ms for the 1,536 tokens of a batch of 128 captions; this loop: a few us).
 * Rows are added in the order of n, the same order np.add.at uses, so the two agree to the
 * last bit. One thread: the rows of two positions with the same id would race.
 */
#include <string.h>

#include "miniclip.h"

#define DEFINE_EMBEDDING_BACKWARD(SFX, T)                                                 \
void embedding_backward##SFX(idx_t N, idx_t C, idx_t V, const long long *ids, const T *dout, \
                             T *dweight)                                                 \
{                                                                                        \
    memset(dweight, 0, (size_t)V * (size_t)C * sizeof(T));                               \
    for (idx_t n = 0; n < N; n++) {                                                      \
        T *row = dweight + (idx_t)ids[n] * C;                                            \
        const T *src = dout + n * C;                                                     \
        for (idx_t c = 0; c < C; c++) row[c] += src[c];                                  \
    }                                                                                    \
}

DEFINE_EMBEDDING_BACKWARD(_f32, float)
DEFINE_EMBEDDING_BACKWARD(_f64, double)
