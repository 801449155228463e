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
      handed_out_.insert(t.get());
      return t;
    }
    ++stats_.replaced;  // the holder died: never hand it out
  }
  ++stats_.created;
  std::unique_ptr<isolate::JailTemplate> t = isolate::JailTemplate::create(profile);
  handed_out_.insert(t.get());
  return t;
}

void TemplatePool::release(std::unique_ptr<isolate::JailTemplate> t) {
  if (!t) return;
  handed_out_.erase(t.get());
  if (outdated_.erase(t.get()) > 0) {
    ++stats_.outdated;
    return;  // destroyed here
  }
  if (!t->alive()) {
    ++stats_.replaced;
    return;
  }
  auto& idle = idle_[&t->profile()];
  if (idle.size() >= max_idle_) return;  // shrink: destroyed here
  idle.push_back(std::move(t));
}

void TemplatePool::invalidate() {
  for (auto& [profile, list] : idle_) {
    stats_.outdated += list.size();
    list.clear();
  }
  outdated_.insert(handed_out_.begin(), handed_out_.end());
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
