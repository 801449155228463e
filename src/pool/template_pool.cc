#include "pool/template_pool.h"

#include "isolate/jail.h"

namespace jailpool::pool {

TemplatePool::~TemplatePool() = default;

std::unique_ptr<isolate::JailTemplate> TemplatePool::acquire(const Profile& profile) {
  auto& idle = idle_[&profile];
  while (!idle.empty()) {
    std::unique_ptr<isolate::JailTemplate> t = std::move(idle.back());
    idle.pop_back();
    if (t->alive()) {
      ++stats_.reused;
      return t;
    }
    ++stats_.replaced;  // the holder died: never hand it out
  }
  ++stats_.created;
  return isolate::JailTemplate::create(profile);
}

void TemplatePool::release(std::unique_ptr<isolate::JailTemplate> t) {
  if (!t) return;
  if (!t->alive()) {
    ++stats_.replaced;
    return;
  }
  auto& idle = idle_[&t->profile()];
  if (idle.size() >= max_idle_) return;  // shrink: destroyed here
  idle.push_back(std::move(t));
}

void TemplatePool::prefill(const Profile& profile, size_t count) {
  auto& idle = idle_[&profile];
  while (idle.size() < count) {
    idle.push_back(isolate::JailTemplate::create(profile));
    ++stats_.created;
  }
}

TemplatePoolStats TemplatePool::stats() const {
  TemplatePoolStats s = stats_;
  s.idle = 0;
  for (const auto& [profile, list] : idle_) s.idle += list.size();
  return s;
}

}  // namespace jailpool::pool
