// The Submitter's statistics: counters that the parts bump without the
// state lock, read together as a Submitter::Stats snapshot.
//
// Threads: any thread bumps them (relaxed atomics); GetStats() reads them.
#ifndef BATCHBUS_LIB_SUBMITTER_COUNTERS_H_
#define BATCHBUS_LIB_SUBMITTER_COUNTERS_H_

#include "batchbus/submitter.h"
#include "counter.h"
#include "histogram.h"
#include "lane.h"

namespace batchbus {

// Each on a cache line of its own: submitting threads and the internal
// thread bump different counters, and must not contend for one line.
struct SubmitterCounters {
  alignas(64) Counter submitted;
  alignas(64) Counter rejected;
  alignas(64) Counter batches_sent;
  alignas(64) Counter processed_ok;
  alignas(64) Counter processed_error;
  alignas(64) Counter batch_failed;
  alignas(64) Counter expired;
  alignas(64) Counter events;
  alignas(64) Counter late_results;
  alignas(64) Counter foreign_results;
  // From a batch's send to each of its jobs' terminal results.
  PerPriority<Histogram> round_trip;

  // Everything but the in-flight figures, which the admission part holds.
  Submitter::Stats Snapshot() const {
    Submitter::Stats s;
    s.submitted = submitted.Get();
    s.rejected = rejected.Get();
    s.batches_sent = batches_sent.Get();
    s.processed_ok = processed_ok.Get();
    s.processed_error = processed_error.Get();
    s.batch_failed = batch_failed.Get();
    s.expired = expired.Get();
    s.events = events.Get();
    s.late_results = late_results.Get();
    s.foreign_results = foreign_results.Get();
    return s;
  }
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_SUBMITTER_COUNTERS_H_
