// Run-time choice of CPU code paths: hot loops are compiled for several x86 instruction sets
// (function target attributes) and the widest one this CPU and OS support is picked once.
#pragma once

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define YOLACTPP_X86_DISPATCH 1
#define YOLACTPP_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define YOLACTPP_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,prefer-vector-width=512")))
#else
#define YOLACTPP_X86_DISPATCH 0
#endif

namespace yolactpp {

/// 0 baseline, 1 AVX2 + FMA, 2 AVX-512 (F, BW, VL, DQ), 3 AVX-512 with BF16 conversions.
inline int cpu_isa_level() {
#if YOLACTPP_X86_DISPATCH
  static const int level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
      return __builtin_cpu_supports("avx512bf16") ? 3 : 2;
    }
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
  }();
  return level;
#else
  return 0;
#endif
}

}  // namespace yolactpp
