// The Processor's statistics: counters that the parts bump without the
// state lock, read together as a Processor::Stats snapshot.
//
// Threads: any thread bumps them (relaxed atomics); GetStats() reads them.
#ifndef BATCHBUS_LIB_PROCESSOR_COUNTERS_H_
#define BATCHBUS_LIB_PROCESSOR_COUNTERS_H_

#include "batchbus/processor.h"
#include "counter.h"

namespace batchbus {

// Worker threads bump the first three and the last two; the poller
// thread the rest.
struct ProcessorCounters {
  alignas(64) Counter handed_out;
  alignas(64) Counter answered_ok;
  alignas(64) Counter answered_error;
  alignas(64) Counter batches_received;
  Counter batches_committed;
  Counter malformed_messages;
  Counter result_messages;
  Counter results_dead_lettered;
  Counter unknown_group;
  Counter expired;
  Counter invalid;
  Counter retried;
  Counter delayed;
  Counter held;
  Counter jobs_dead_lettered;

  // Everything but the scheduler's figures, which its lock guards.
  Processor::Stats Snapshot() const {
    Processor::Stats s;
    s.handed_out = handed_out.Get();
    s.processed_ok = answered_ok.Get();
    s.processed_error = answered_error.Get();
    s.batches_received = batches_received.Get();
    s.batches_committed = batches_committed.Get();
    s.malformed_messages = malformed_messages.Get();
    s.result_messages = result_messages.Get();
    s.results_dead_lettered = results_dead_lettered.Get();
    s.unknown_group = unknown_group.Get();
    s.expired = expired.Get();
    s.invalid = invalid.Get();
    s.retried = retried.Get();
    s.delayed = delayed.Get();
    s.held = held.Get();
    s.jobs_dead_lettered = jobs_dead_lettered.Get();
    return s;
  }
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_PROCESSOR_COUNTERS_H_
