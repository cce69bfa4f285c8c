-- The plugin loads with no configuration, defines its commands, mappings and highlights,
-- validates setup(), and :checkhealth refine reports on the binary, client and provider.
package.path = os.getenv("REFINE_TEST_DIR") .. "/?.lua;" .. package.path
local H = require("helpers")

for _, name in ipairs({ "Refine", "RefineNow", "RefineApply", "RefineDiff", "RefineCancel", "RefineClear" }) do
  H.ok(vim.fn.exists(":" .. name) == 2, "command " .. name)
end
for _, lhs in ipairs({ "<Plug>(RefineReview)", "<Plug>(RefineAccept)", "<Plug>(RefineReject)" }) do
  H.ok(vim.fn.maparg(lhs, "n") ~= "", "mapping " .. lhs)
end
H.eq(vim.api.nvim_get_hl(0, { name = "RefineDiffAdd" }).link, "DiffAdd", "highlight link")
H.ok(not pcall(require("refine").setup, { bogus = true }), "unknown option rejected")
H.ok(not pcall(require("refine").setup, { notify = "yes" }), "wrong type rejected")
H.ok(pcall(require("refine").setup, { notify = false }), "valid options accepted")

local path = os.getenv("REFINE_WORK") .. "/sum.rs"
H.open(path, os.getenv("REFINE_CODE"))
vim.cmd("checkhealth refine")
local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
H.ok(report:find("refine-ls found: refine-ls", 1, true), "binary and version in health:\n" .. report)
H.ok(report:find("client attached to this buffer", 1, true), "client in health:\n" .. report)
H.ok(report:find("position encoding utf-", 1, true), "encoding in health:\n" .. report)
H.ok(report:find("provider: openai", 1, true), "provider in health:\n" .. report)
H.done()
