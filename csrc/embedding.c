/* embedding.c: the embedding table's gradient, a scatter-add of rows.
 *
 * Shape legend: N looked-up positions (every leading axis of the ids flattened), C features,
 * V rows in the table. ids (N,) int64 in [0, V); dout (N, C) contiguous; dweight (V, C).
 *
 *     dweight[v] = sum over n with ids[n] == v of dout[n]
 *
 * NumPy says it as np.add.at(dweight, ids, dout), which goes through a generic per-element
 * path, many times slower than this loop (benchmarks/README.md).
 * Rows are added in the order of n, the same order np.add.at uses, so the two agree to the
 * last bit. One thread: the rows of two positions with the same id would race.
 */
#include <string.h>

#include "miniclip.h"

#define REAL_BITS 32
#include "embedding_impl.h"
#define REAL_BITS 64
#include "embedding_impl.h"
