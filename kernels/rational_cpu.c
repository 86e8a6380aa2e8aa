/* The group-rational unit F(x) = P(x) / (1 + sum_i |b_i| |x|^i) on a CPU, forward and
 * closed-form backward, one pass over the tensor each (see rational.py for the math).
 *
 * Plain C (GCC / Clang vector extensions) with no Python or torch headers: kernels/cpu.py
 * compiles it once per machine (a fraction of a second) and calls it through ctypes on
 * contiguous float32 buffers. x is [rows, d] row-major; a is [ga, m1] (a_0..a_m), b is
 * [gb, n] (b_1..b_n); channel c takes the numerator of group c / (d / ga) and the
 * denominator of group c / (d / gb) (KAT shares one numerator: ga = 1).
 *
 * The work goes by blocks of 8 channels: a block's coefficients are loaded once into
 * vectors, then every row of the block is evaluated in registers - Horner for P, P', Q
 * and Q' - and, backward, the coefficient gradients' running powers are summed per
 * channel in vector accumulators that stay in registers across the rows (flushed into
 * double every 64 rows). A last block narrower than 8 is zero-padded (a zero upstream
 * gradient adds nothing). Degrees up to MAXK; KAT's (m1 = 6, n = 4, the one autoarch
 * lowers) gets a copy with them constant, its degree loops unrolled.
 *
 * The functions return 0, -1 when scratch memory could not be allocated, -2 for degrees
 * above MAXK.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define W 8
#define MAXK 16
#define INLINE static inline __attribute__((always_inline))

typedef float v8 __attribute__((vector_size(W * sizeof(float))));
typedef int32_t m8 __attribute__((vector_size(W * sizeof(float))));

INLINE v8 load(const float *p, int64_t width) {
    v8 v = {0};
    memcpy(&v, p, (size_t)width * sizeof(float));
    return v;
}

INLINE void store(float *p, v8 v, int64_t width) { memcpy(p, &v, (size_t)width * sizeof(float)); }

INLINE v8 vabs(v8 v) { return (v8)((m8)v & ((m8){0} + 0x7fffffff)); }

INLINE v8 vsign(v8 v) {
    v8 one = (v8){0} + 1.0f;
    return (v8)((m8)one & (v > 0)) - (v8)((m8)one & (v < 0));
}

/* Row i of [k, d]: coefficient i of each channel's group, for the block c0..c0+width. */
INLINE v8 coef(const float *c, int64_t per, int64_t k, int64_t i, int64_t c0, int64_t width,
               int absolute, float scale) {
    v8 v = {0};
    for (int64_t l = 0; l < width; l++) {
        float x = c[((c0 + l) / per) * k + i];
        v[l] = (absolute ? fabsf(x) : x) * scale;
    }
    return v;
}

INLINE void forward_block(const float *x, const float *a, const float *b, float *y,
                          int64_t rows, int64_t d, int64_t per_a, int64_t per_b, int64_t c0,
                          int64_t width, int64_t m1, int64_t n) {
    v8 A[MAXK], B[MAXK];
    for (int64_t i = 0; i < m1; i++) A[i] = coef(a, per_a, m1, i, c0, width, 0, 1.0f);
    for (int64_t i = 0; i < n; i++) B[i] = coef(b, per_b, n, i, c0, width, 1, 1.0f);
    for (int64_t r = 0; r < rows; r++) {
        v8 xv = load(x + r * d + c0, width), ax = vabs(xv);
        v8 p = A[m1 - 1], q = {0};
        for (int64_t i = m1 - 2; i >= 0; i--) p = p * xv + A[i];
        for (int64_t i = n - 1; i >= 0; i--) q = q * ax + B[i];
        store(y + r * d + c0, p / (1.0f + q * ax), width);
    }
}

int rational_forward_f32(const float *x, const float *a, const float *b, float *y, int64_t rows,
                         int64_t d, int64_t ga, int64_t gb, int64_t m1, int64_t n) {
    if (m1 < 1 || m1 > MAXK || n < 0 || n > MAXK) return -2;
    int64_t pa = d / ga, pb = d / gb;
    for (int64_t c0 = 0; c0 < d; c0 += W) {
        if (c0 + W <= d && m1 == 6 && n == 4)
            forward_block(x, a, b, y, rows, d, pa, pb, c0, W, 6, 4);
        else if (c0 + W <= d)
            forward_block(x, a, b, y, rows, d, pa, pb, c0, W, m1, n);
        else
            forward_block(x, a, b, y, rows, d, pa, pb, c0, d - c0, m1, n);
    }
    return 0;
}

/* dx = (P' - sgn(x) S P / Q) / Q * grad with S = sum i |b_i| |x|^(i-1); per channel,
 * total[i] += grad x^i / Q (i < m1) and total[m1 + i] += grad P / Q^2 |x|^(i+1) (i < n). */
INLINE void backward_block(const float *x, const float *grad, const float *a, const float *b,
                           float *dx, double *total, int64_t rows, int64_t d, int64_t per_a,
                           int64_t per_b, int64_t c0, int64_t width, int64_t m1, int64_t n) {
    v8 A[MAXK], DA[MAXK], B[MAXK], DB[MAXK], acc[2 * MAXK];
    for (int64_t i = 0; i < m1; i++) {
        A[i] = coef(a, per_a, m1, i, c0, width, 0, 1.0f);
        DA[i] = coef(a, per_a, m1, i, c0, width, 0, (float)i);
    }
    for (int64_t i = 0; i < n; i++) {
        B[i] = coef(b, per_b, n, i, c0, width, 1, 1.0f);
        DB[i] = coef(b, per_b, n, i, c0, width, 1, (float)(i + 1));
    }
    int64_t k = m1 + n;
    for (int64_t i = 0; i < k; i++) acc[i] = (v8){0};
    for (int64_t r = 0; r < rows; r++) {
        v8 xv = load(x + r * d + c0, width), gv = load(grad + r * d + c0, width);
        v8 ax = vabs(xv);
        v8 p = A[m1 - 1], dp = {0}, q = {0}, s = {0};
        for (int64_t i = m1 - 2; i >= 0; i--) p = p * xv + A[i];
        for (int64_t i = m1 - 1; i >= 1; i--) dp = dp * xv + DA[i];
        for (int64_t i = n - 1; i >= 0; i--) {
            q = q * ax + B[i];
            s = s * ax + DB[i];
        }
        v8 inv = 1.0f / (1.0f + q * ax);
        v8 t = gv * inv;      /* grad / Q */
        v8 u = t * p * inv;   /* grad P / Q^2 */
        store(dx + r * d + c0, t * dp - u * s * vsign(xv), width);
        v8 pw = t;
        for (int64_t i = 0; i < m1; i++) { acc[i] += pw; pw *= xv; }
        pw = u * ax;
        for (int64_t i = 0; i < n; i++) { acc[m1 + i] += pw; pw *= ax; }
        if ((r & 63) == 63 || r == rows - 1)
            for (int64_t i = 0; i < k; i++) {
                for (int64_t l = 0; l < width; l++) total[i * d + c0 + l] += (double)acc[i][l];
                acc[i] = (v8){0};
            }
    }
}

int rational_backward_f32(const float *x, const float *grad, const float *a, const float *b,
                          float *dx, float *da, float *db, int64_t rows, int64_t d, int64_t ga,
                          int64_t gb, int64_t m1, int64_t n) {
    /* da[j][i] = sum of grad x^i / Q over the rows and the channels that take numerator j;
     * db[j][i-1] = -sgn(b_i) times the sum of grad P / Q^2 |x|^i over those of
     * denominator j (summed in double, written as float) */
    if (m1 < 1 || m1 > MAXK || n < 0 || n > MAXK) return -2;
    int64_t k = m1 + n, pa = d / ga, pb = d / gb;
    double *total = (double *)calloc((size_t)(k * d + ga * m1 + gb * n), sizeof(double));
    if (!total) return -1;
    double *sa = total + k * d, *sb = sa + ga * m1;
    for (int64_t c0 = 0; c0 < d; c0 += W) {
        if (c0 + W <= d && m1 == 6 && n == 4)
            backward_block(x, grad, a, b, dx, total, rows, d, pa, pb, c0, W, 6, 4);
        else if (c0 + W <= d)
            backward_block(x, grad, a, b, dx, total, rows, d, pa, pb, c0, W, m1, n);
        else
            backward_block(x, grad, a, b, dx, total, rows, d, pa, pb, c0, d - c0, m1, n);
    }
    for (int64_t c = 0; c < d; c++) {
        for (int64_t i = 0; i < m1; i++) sa[(c / pa) * m1 + i] += total[i * d + c];
        for (int64_t i = 0; i < n; i++) sb[(c / pb) * n + i] += total[(m1 + i) * d + c];
    }
    for (int64_t j = 0; j < ga * m1; j++) da[j] = (float)sa[j];
    for (int64_t j = 0; j < gb * n; j++) db[j] = (float)(-sb[j] * ((b[j] > 0) - (b[j] < 0)));
    free(total);
    return 0;
}
