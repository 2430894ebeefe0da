/* real_end.h: undo real.h at the end of a kernel's _impl.h, so the next type can start. */
#undef REAL_BITS
#undef REAL
#undef SFX
#undef EXP
#undef LOG
#undef SQRT
#undef VEXP
#undef MR
#undef NR
#undef UKR_T
#undef GET_UKR
#undef MR512
#undef NR512
#undef GET_UKR512
