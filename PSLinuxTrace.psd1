@{
    # The one version number: Directory.Build.props reads ModuleVersion from this file.
    RootModule             = 'PSLinuxTrace.dll'
    ModuleVersion          = '0.1.0'
    GUID                   = '5b0f7e53-6d0b-4f0e-9a0e-2f1c7d8a4c11'
    Author                 = 'PSLinuxTrace contributors'
    CompanyName            = 'PSLinuxTrace'
    Copyright              = '(c) PSLinuxTrace contributors. MIT License.'
    Description            = 'Linux process introspection as PowerShell objects: ELF symbols in live processes, ptrace syscall tracing, eBPF exec watching, core dump reading and live process snapshots.'
    CompatiblePSEditions   = @('Core')
    PowerShellVersion      = '7.4'
    CmdletsToExport        = @(
        'Get-ProcessStack'
        'Get-ProcSymbol'
        'Read-CoreDump'
        'Save-ProcessSnapshot'
        'Start-SyscallTrace'
        'Watch-Exec'
    )
    FunctionsToExport      = @()
    VariablesToExport      = @()
    AliasesToExport        = @()
    # How the objects cross remoting and jobs (serialization depth of nested records).
    TypesToProcess         = @('PSLinuxTrace.types.ps1xml')
    FormatsToProcess       = @(
        'PSLinuxTrace.ProcSymbol.format.ps1xml'
        'PSLinuxTrace.CoreDump.format.ps1xml'
        'PSLinuxTrace.ProcessStack.format.ps1xml'
        'PSLinuxTrace.Snapshot.format.ps1xml'
        'PSLinuxTrace.SyscallTrace.format.ps1xml'
        'PSLinuxTrace.Exec.format.ps1xml'
    )
    PrivateData            = @{
        PSData = @{
            Tags         = @('Linux', 'ptrace', 'strace', 'eBPF', 'ELF', 'coredump', 'debugging', 'tracing', 'PSEdition_Core')
            LicenseUri   = 'https://github.com/pslinuxtrace/PSLinuxTrace/blob/main/LICENSE'
            ProjectUri   = 'https://github.com/pslinuxtrace/PSLinuxTrace'
            ReleaseNotes = 'First release: Get-ProcSymbol, Start-SyscallTrace, Watch-Exec, Read-CoreDump and Save-ProcessSnapshot, on an engine with its own ELF reader, DWARF CFI unwinder, ptrace tracer and eBPF loader.'
        }
    }
}
