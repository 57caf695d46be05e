#include "strcat.h"
#include "group_members.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "admin.h"

namespace batchbus::cli {
namespace {

// Big-endian reader over a byte string; every read fails once out of data.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool Int16(int& v) { return Read(2, v); }
  bool Int32(int& v) { return Read(4, v); }
  bool String(std::string& s) {
    int n = 0;
    if (!Int16(n) || n < 0 || static_cast<size_t>(n) > b_.size() - at_) {
      return false;
    }
    s.assign(b_.substr(at_, n));
    at_ += n;
    return true;
  }

 private:
  bool Read(size_t bytes, int& v) {
    if (b_.size() - at_ < bytes) return false;
    uint32_t x = 0;
    for (size_t i = 0; i < bytes; ++i) {
      x = (x << 8) | static_cast<uint8_t>(b_[at_ + i]);
    }
    at_ += bytes;
    v = bytes == 2 ? static_cast<int16_t>(x) : static_cast<int32_t>(x);
    return true;
  }
  std::string_view b_;
  size_t at_ = 0;
};

}  // namespace

std::string GroupMember::AssignmentText() const {
  std::vector<std::string> parts;
  for (const auto& [topic, partitions] : assignment) {
    parts.push_back(StrCat(topic, "[", absl::StrJoin(partitions, ","), "]"));
  }
  return absl::StrJoin(parts, " ");
}

bool DecodeAssignment(std::string_view bytes,
                      std::map<std::string, std::vector<int>>& out) {
  Reader r(bytes);
  int version = 0, topics = 0;
  if (!r.Int16(version) || version < 0 || !r.Int32(topics) || topics < 0) {
    return false;
  }
  for (int t = 0; t < topics; ++t) {
    std::string name;
    int n = 0;
    if (!r.String(name) || !r.Int32(n) || n < 0) return false;
    std::vector<int>& parts = out[name];
    for (int i = 0; i < n; ++i) {
      int p = 0;
      if (!r.Int32(p)) return false;
      parts.push_back(p);
    }
  }
  return true;
}

absl::StatusOr<GroupDescription> DescribeGroup(rd_kafka_t* rk,
                                               const std::string& group) {
  const rd_kafka_group_list* raw = nullptr;
  if (rd_kafka_resp_err_t e = rd_kafka_list_groups(
          rk, group.c_str(), &raw, kafka::ToMillis(kAdminTimeout))) {
    return kafka::ToStatus(e, StrCat("describing group ", group));
  }
  std::unique_ptr<const rd_kafka_group_list, void (*)(const rd_kafka_group_list*)>
      list(raw, rd_kafka_group_list_destroy);
  GroupDescription d;
  d.state = "Dead";  // The broker knows no such group.
  for (int i = 0; i < list->group_cnt; ++i) {
    const rd_kafka_group_info& g = list->groups[i];
    if (group != g.group) continue;
    if (g.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return kafka::ToStatus(g.err, StrCat("describing group ", group));
    }
    d.state = g.state ? g.state : "";
    for (int m = 0; m < g.member_cnt; ++m) {
      const rd_kafka_group_member_info& mi = g.members[m];
      GroupMember member;
      member.member_id = mi.member_id ? mi.member_id : "";
      member.client_id = mi.client_id ? mi.client_id : "";
      member.client_host = mi.client_host ? mi.client_host : "";
      if (mi.member_assignment != nullptr && mi.member_assignment_size > 0) {
        DecodeAssignment(
            std::string_view(static_cast<const char*>(mi.member_assignment),
                             mi.member_assignment_size),
            member.assignment);
      }
      d.members.push_back(std::move(member));
    }
  }
  return d;
}

}  // namespace batchbus::cli
