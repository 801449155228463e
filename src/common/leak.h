// Memory jailpool gives up on on purpose: what a task that outlived SIGKILL may still use (a
// jail's plan, a slot's control block) is never freed under it. Told to LeakSanitizer, which
// would otherwise report it at exit (with everything it points to).
#pragma once

#include <memory>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace jailpool {

template <typename T>
void leak_on_purpose(std::unique_ptr<T> owned) {
  T* raw = owned.release();
#if defined(__SANITIZE_ADDRESS__)
  if (raw != nullptr) __lsan_ignore_object(raw);
#else
  (void)raw;
#endif
}

}  // namespace jailpool
