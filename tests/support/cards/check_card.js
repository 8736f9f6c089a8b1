// Reads a Teams Workflows message (JSON) on stdin and parses each Adaptive
// Card in it with Microsoft's own `adaptivecards` package. Prints what the
// parser reported and exits 1 on any error or warning, 0 when clean.
"use strict";
const AC = require("adaptivecards/dist/adaptivecards.js");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const message = JSON.parse(input);
  const problems = [];
  const attachments = message.attachments || [];
  if (message.type !== "message" || attachments.length === 0) {
    problems.push("not a message with attachments");
  }
  for (const attachment of attachments) {
    if (attachment.contentType !== "application/vnd.microsoft.card.adaptive") {
      problems.push(`attachment content type ${attachment.contentType}`);
      continue;
    }
    const content = attachment.content;
    if (content.version !== "1.4") {
      problems.push(`card version ${content.version}, not 1.4`);
    }
    const context = new AC.SerializationContext(AC.Versions.v1_4);
    const card = new AC.AdaptiveCard();
    card.parse(content, context);
    for (let i = 0; i < context.eventCount; i++) {
      const e = context.getEventAt(i);
      problems.push(`parse: ${e.phase} ${e.event}: ${e.message}`);
    }
    const validation = card.validateProperties();
    for (const issue of validation.validationEvents) {
      problems.push(`validate: ${issue.event}: ${issue.message}`);
    }
    // What the card would show, so a test can check the words too.
    const texts = [];
    const walk = (el) => {
      if (!el) return;
      if (el.getJsonTypeName && el.getJsonTypeName() === "TextBlock") texts.push(el.text);
      if (el.getJsonTypeName && el.getJsonTypeName() === "FactSet") {
        for (const f of el.facts) texts.push(`${f.name}: ${f.value}`);
      }
      if (el.getItemCount) for (let i = 0; i < el.getItemCount(); i++) walk(el.getItemAt(i));
    };
    walk(card);
    const actions = [];
    for (let i = 0; i < card.getActionCount(); i++) {
      const a = card.getActionAt(i);
      actions.push({ type: a.getJsonTypeName(), title: a.title, url: a.url });
    }
    console.log(JSON.stringify({ version: card.version.toString(), texts, actions }));
  }
  if (problems.length > 0) {
    console.error(problems.join("\n"));
    process.exit(1);
  }
});
