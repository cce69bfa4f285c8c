-- Options of refine.nvim, with defaults and validation.
local M = {}

---@class refine.Options
---@field notify boolean Show a message when a review finishes.
---@field diff_float_border string Border of the :RefineDiff float.
---@field server table|nil Extra settings passed to the server (section `refine`).

---@type refine.Options
M.defaults = {
  notify = true,
  diff_float_border = "rounded",
  server = nil,
}

---@type refine.Options
M.options = vim.deepcopy(M.defaults)

---Merges and validates user options.
---@param opts refine.Options|nil
---@return refine.Options
function M.apply(opts)
  opts = opts or {}
  vim.validate("opts", opts, "table")
  vim.validate("opts.notify", opts.notify, "boolean", true)
  vim.validate("opts.diff_float_border", opts.diff_float_border, "string", true)
  vim.validate("opts.server", opts.server, "table", true)
  for key in pairs(opts) do
    if M.defaults[key] == nil and key ~= "server" then
      error(("refine.setup: unknown option `%s`"):format(key))
    end
  end
  M.options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts)
  return M.options
end

return M
