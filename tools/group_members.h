// A consumer group's state and members, with the partitions each member
// was assigned (decoded from the group's consumer-protocol assignment).
#ifndef BATCHBUS_TOOLS_GROUP_MEMBERS_H_
#define BATCHBUS_TOOLS_GROUP_MEMBERS_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "kafka.h"

namespace batchbus::cli {

struct GroupMember {
  std::string member_id;
  std::string client_id;
  std::string client_host;
  // Topic -> partitions.
  std::map<std::string, std::vector<int>> assignment;
  // "topic[0,1] topic2[3]".
  std::string AssignmentText() const;
};

struct GroupDescription {
  std::string state;  // "Stable", "Empty", "PreparingRebalance", ...
  std::vector<GroupMember> members;
};

absl::StatusOr<GroupDescription> DescribeGroup(rd_kafka_t* rk,
                                               const std::string& group);

// Decodes a ConsumerProtocolAssignment (version, then topics with their
// partitions, then user data). False when `bytes` is not one.
bool DecodeAssignment(std::string_view bytes,
                      std::map<std::string, std::vector<int>>& out);

}  // namespace batchbus::cli

#endif  // BATCHBUS_TOOLS_GROUP_MEMBERS_H_
