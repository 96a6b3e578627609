/*
 * omp.h for the WebAssembly build (scripts/build-wasm.sh) only: the browser
 * build is single-threaded (no -fopenmp, the `#pragma omp` lines are ignored),
 * and these are the OpenMP runtime calls the library makes, answered for one
 * thread by web/wasm/shim.c. The native build uses the compiler's real omp.h.
 */
#ifndef CDL_WASM_OMP_H
#define CDL_WASM_OMP_H
int omp_get_max_threads(void);
int omp_get_thread_num(void);
int omp_get_num_procs(void);
void omp_set_num_threads(int n);
#endif
