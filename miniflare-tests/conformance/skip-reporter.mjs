// Lists every test the run skipped, with the reason, so a green run never hides what it did not
// check. The suite skips only whole optional sections; their reasons are known here.
const REASONS = {
  "Reserved subscription APIs":
    "optional suite section, run only with runConformanceTests({ subscriptions: true }): webhook/pull-wake subscriptions are not part of this server",
};

export default class SkipReporter {
  onTestRunEnd(modules) {
    const skipped = [];
    const walk = (children) => {
      for (const child of children) {
        if (child.type === "test" && child.result().state === "skipped") {
          const section = child.fullName.split(" > ")[0];
          skipped.push(`${child.fullName}\n      reason: ${REASONS[section] ?? "skipped by the suite itself"}`);
        } else if (child.children) {
          walk(child.children.array());
        }
      }
    };
    for (const module of modules) walk(module.children.array());
    if (skipped.length) {
      console.log(`\nSkipped conformance tests (${skipped.length}):`);
      for (const line of skipped) console.log(`  - ${line}`);
    }
  }
}
