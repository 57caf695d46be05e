// ThreadSanitizer shim for librdkafka, linked into test programs of the tsan
// preset only.
//
// librdkafka uses C11 threads (thrd_create, mtx_lock, cnd_wait). glibc
// implements those by calling its internal pthread functions directly, so
// ThreadSanitizer's pthread interceptors never see them: threads started by
// thrd_create crash inside the sanitizer, and the locking librdkafka does
// between our threads and its own is invisible (false reports). Defining
// the C11 functions here, on top of the public pthread functions,
// interposes them for the whole process.
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

namespace {

struct Start {
  thrd_start_t func;
  void* arg;
};

void* Trampoline(void* p) {
  Start start = *static_cast<Start*>(p);
  free(p);
  return reinterpret_cast<void*>(static_cast<intptr_t>(start.func(start.arg)));
}

int FromErrno(int rc) {
  switch (rc) {
    case 0: return thrd_success;
    case ETIMEDOUT: return thrd_timedout;
    case EBUSY: return thrd_busy;
    case ENOMEM: return thrd_nomem;
    default: return thrd_error;
  }
}

}  // namespace

extern "C" {

int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  auto* start = static_cast<Start*>(malloc(sizeof(Start)));
  if (start == nullptr) return thrd_nomem;
  start->func = func;
  start->arg = arg;
  int rc = pthread_create(reinterpret_cast<pthread_t*>(thr), nullptr,
                          Trampoline, start);
  if (rc != 0) free(start);
  return FromErrno(rc);
}

int thrd_join(thrd_t thr, int* res) {
  void* value = nullptr;
  int rc = pthread_join(static_cast<pthread_t>(thr), &value);
  if (rc == 0 && res != nullptr) {
    *res = static_cast<int>(reinterpret_cast<intptr_t>(value));
  }
  return FromErrno(rc);
}

int thrd_detach(thrd_t thr) {
  return FromErrno(pthread_detach(static_cast<pthread_t>(thr)));
}

int mtx_lock(mtx_t* m) {
  return FromErrno(pthread_mutex_lock(reinterpret_cast<pthread_mutex_t*>(m)));
}

int mtx_trylock(mtx_t* m) {
  return FromErrno(
      pthread_mutex_trylock(reinterpret_cast<pthread_mutex_t*>(m)));
}

int mtx_timedlock(mtx_t* m, const struct timespec* ts) {
  return FromErrno(
      pthread_mutex_timedlock(reinterpret_cast<pthread_mutex_t*>(m), ts));
}

int mtx_unlock(mtx_t* m) {
  return FromErrno(
      pthread_mutex_unlock(reinterpret_cast<pthread_mutex_t*>(m)));
}

int cnd_signal(cnd_t* c) {
  return FromErrno(pthread_cond_signal(reinterpret_cast<pthread_cond_t*>(c)));
}

int cnd_broadcast(cnd_t* c) {
  return FromErrno(
      pthread_cond_broadcast(reinterpret_cast<pthread_cond_t*>(c)));
}

int cnd_wait(cnd_t* c, mtx_t* m) {
  return FromErrno(pthread_cond_wait(reinterpret_cast<pthread_cond_t*>(c),
                                     reinterpret_cast<pthread_mutex_t*>(m)));
}

int cnd_timedwait(cnd_t* c, mtx_t* m, const struct timespec* ts) {
  return FromErrno(
      pthread_cond_timedwait(reinterpret_cast<pthread_cond_t*>(c),
                             reinterpret_cast<pthread_mutex_t*>(m), ts));
}

}  // extern "C"
