/* C example: the C ABI of libtileattn.
 *
 *   ./attend_c            prints a summary
 *   ./attend_c out.bin    also writes two float32 outputs: the contiguous call (bhsd) and the params call
 *                         (bshd layout, sliding window (8, 0)), each (batch, heads, seq, dim_v) in bhsd order
 *
 * Inputs: q[i] = sin(0.37 i), k[i] = cos(0.11 i), v[i] = sin(0.23 i + 1) over contiguous bhsd arrays.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <tileattn/tileattn.h>

enum { B = 2, HQ = 4, HKV = 2, SQ = 37, SK = 45, D = 40, DV = 24 };

int main(int argc, char** argv) {
  static float q[B * HQ * SQ * D], k[B * HKV * SK * D], v[B * HKV * SK * DV];
  static float out[B * HQ * SQ * DV], out_window[B * HQ * SQ * DV], lse[B * HQ * SQ];
  for (int i = 0; i < B * HQ * SQ * D; ++i) q[i] = (float)sin(0.37 * i);
  for (int i = 0; i < B * HKV * SK * D; ++i) k[i] = (float)cos(0.11 * i);
  for (int i = 0; i < B * HKV * SK * DV; ++i) v[i] = (float)sin(0.23 * i + 1.0);

  /* Contiguous bhsd float32, causal, default scale (NaN = 1/sqrt(D)). */
  if (tileattn_attention_f32(q, k, v, out, lse, B, HQ, HKV, SQ, SK, D, DV, NAN, 1) != TILEATTN_OK) {
    fprintf(stderr, "tileattn: %s\n", tileattn_last_error());
    return 1;
  }

  /* Every option through the params struct: the same inputs read as they are (bhsd), the output written
   * in bshd order through its strides, with a sliding window of 8 keys to the left. */
  static float out_bshd[B * SQ * HQ * DV];
  tileattn_params p;
  tileattn_params_init(&p);
  p.dtype = TILEATTN_FLOAT32;
  p.q = q, p.k = k, p.v = v, p.out = out_bshd;
  p.batch = B, p.heads_q = HQ, p.heads_kv = HKV, p.seq_q = SQ, p.seq_k = SK, p.head_dim = D, p.head_dim_v = DV;
  tileattn_contiguous_strides(HQ, SQ, D, 0, p.q_strides);
  tileattn_contiguous_strides(HKV, SK, D, 0, p.k_strides);
  tileattn_contiguous_strides(HKV, SK, DV, 0, p.v_strides);
  tileattn_contiguous_strides(HQ, SQ, DV, 1, p.out_strides);
  p.window_left = 8;
  p.window_right = 0;
  if (tileattn_attention(&p) != TILEATTN_OK) {
    fprintf(stderr, "tileattn: %s\n", tileattn_last_error());
    return 1;
  }
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < HQ; ++h)
      for (int i = 0; i < SQ; ++i)
        for (int d = 0; d < DV; ++d)
          out_window[((b * HQ + h) * SQ + i) * DV + d] = out_bshd[((b * SQ + i) * HQ + h) * DV + d];

  /* A bad call returns a status and a message; nothing is thrown, nothing aborts. */
  int status = tileattn_attention_f32(q, k, v, out, NULL, B, HQ, 3, SQ, SK, D, DV, NAN, 1);
  printf("bad call: status %d, \"%s\"\n", status, tileattn_last_error());
  if (status != TILEATTN_ERROR_INVALID_ARGUMENT) return 1;

  double checksum = 0;
  for (int i = 0; i < B * HQ * SQ * DV; ++i) checksum += out[i];
  printf("tileattn %s (ABI %d): checksum %.6f, lse[0] %.6f\n", tileattn_version(), tileattn_abi_version(), checksum,
         (double)lse[0]);
  if (argc > 1) {
    FILE* f = fopen(argv[1], "wb");
    if (f == NULL) return 1;
    fwrite(out, sizeof(float), B * HQ * SQ * DV, f);
    fwrite(out_window, sizeof(float), B * HQ * SQ * DV, f);
    fclose(f);
  }
  return 0;
}
